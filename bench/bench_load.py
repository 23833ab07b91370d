"""Model loading for a one-shot ``docqa ask``: embedder then generator, vs both at once.

``docqa ask`` loads the generator in a background thread while the embedder loads (safetensors
reads and torch's tensor copies release the GIL). Each arm runs in a fresh subprocess, the arms
interleaved; the OS file cache is warm for both after the first round, and the best round of
each is kept.

    python bench/bench_load.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ARM = """
import json, sys, time
from ingest.embed import load_embedder
from ingest.settings import load_settings
from rag.cli.ask_cmd import _Background
from rag.generate import load_generator
s = load_settings()
t0 = time.perf_counter()
if sys.argv[1] == "sequential":
    load_embedder(s.embedder, s.models_dir, threads=s.threads)
    t1 = time.perf_counter()
    load_generator(s)
    t2 = time.perf_counter()
    print(json.dumps({"embedder_s": t1 - t0, "generator_s": t2 - t1, "total_s": t2 - t0}))
else:
    loading = _Background(lambda: load_generator(s))
    load_embedder(s.embedder, s.models_dir, threads=s.threads)
    loading.result()
    print(json.dumps({"total_s": time.perf_counter() - t0}))
"""


def _arm(kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", ARM, kind], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs = {"sequential": [], "background": []}
    for _ in range(args.rounds):  # interleaved, so both arms see the same machine
        for kind in runs:
            runs[kind].append(_arm(kind))
            print(kind, runs[kind][-1], flush=True)
    best = {kind: min(r["total_s"] for r in rs) for kind, rs in runs.items()}
    report = {
        "runs": runs,
        "best_total_s": best,
        "speedup": best["sequential"] / best["background"],
        "loadavg": os.getloadavg(),
    }
    print(f"sequential {best['sequential']:.1f} s, background {best['background']:.1f} s: "
          f"{report['speedup']:.2f}x")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_load.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
