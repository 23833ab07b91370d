"""What a one-shot ``docqa ask`` pays before answering: imports and loading the two models.

Each round runs in a fresh process (the OS file cache is warm after the first): the time to
import and load the embedder (torch, transformers and sentence-transformers come in with it),
then the generator. The best round is kept. (A background thread loading the generator while the
embedder loaded measured 0.99x here, so ``docqa ask`` loads them in turn.)

    python bench/bench_load.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROUND = """
import json, time
t0 = time.perf_counter()
from ingest.embedders import load_embedder
from ingest.settings import load_settings
from rag.generate import load_generator
s = load_settings()
t1 = time.perf_counter()
load_embedder(s)
t2 = time.perf_counter()
load_generator(s)
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "embedder_s": t2 - t1, "generator_s": t3 - t2, "total_s": t3 - t0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, "-c", ROUND], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    best = min(runs, key=lambda r: r["total_s"])
    report = {"runs": runs, "best": best, "loadavg": os.getloadavg()}
    print("best: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_load.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
