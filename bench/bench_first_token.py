"""Time to the first answer token with the default engine, on dev-set questions in both languages.

The engine answers each question as a user would (retrieval, the refusal decision and its probe,
then decoding); the first token is the first streamed piece. Questions alternate English and
Spanish, so the prompt prefix the runtime can reuse changes language at every question (the worst
case for a prefix cache); ``--order grouped`` asks all English ones first. Prints p50/p95 of the
first token over the questions the model read (not those refused by retrieval's gate), the total
time, the runtime and the load average, and writes ``bench/results/first_token-RUNTIME-ORDER.json``
(or ``--out``). ``--warm-up`` prefills the prompt prefixes first, as the app and the API do when
they load the engine; ``first_read_first_token`` is what the first question in each language took.

    python bench/bench_first_token.py --index /work/lopo/index-all --questions 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", required=True, help="an index of the dev set (bench/eval_lopo.py build)")
    parser.add_argument("--questions", type=int, default=40, help="how many, half per language")
    parser.add_argument("--order", choices=["alternate", "grouped"], default="alternate")
    parser.add_argument("--runtime", default=None, help="generator_runtime (default: the settings')")
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="prefill the prompt prefixes first (Engine.warm_up, as the app and the API do at load)",
    )
    parser.add_argument(
        "--out", default=None, help="results file name (default: first_token-RUNTIME-ORDER.json)"
    )
    args = parser.parse_args(argv)

    import lopo_data

    from ingest.settings import load_settings
    from rag.engine import open_engine

    rng = random.Random(0)
    pool = [q for q in lopo_data.questions() if q.kind == "answerable"]
    half = args.questions // 2
    english = rng.sample([q for q in pool if q.lang == "en"], half)
    spanish = rng.sample([q for q in pool if q.lang == "es"], half)
    order = [q for pair in zip(english, spanish, strict=True) for q in pair]
    if args.order == "grouped":
        order = english + spanish
    changes = {"index_dir": Path(args.index)}
    if args.runtime:
        changes["generator_runtime"] = args.runtime
    settings = load_settings().replace(**changes)
    engine = open_engine(settings)
    start = time.perf_counter()
    generator = engine.generator
    load_s = time.perf_counter() - start
    warm_up_s = engine.warm_up() if args.warm_up else None
    runtime = getattr(generator, "runtime", "torch")
    rows = []
    for i, q in enumerate(order, 1):
        load = os.getloadavg()[0]
        answer = engine.ask(q.question)
        t = answer.timings
        rows.append(
            {
                "id": q.id,
                "lang": q.lang,
                "prompt_tokens": t.prompt_tokens,
                "first_token": t.first_token,
                "total": t.total,
                "refused": answer.refused,
                "load": load,
            }
        )
        print(
            f"{i:3} {q.lang} first {t.first_token:6.2f} s total {t.total:6.2f} s load {load:4.1f}",
            file=sys.stderr,
        )
    read = [r for r in rows if r["prompt_tokens"]]
    firsts = sorted(r["first_token"] for r in read)
    report = {
        "command": "python bench/bench_first_token.py " + " ".join(sys.argv[1:]),
        "runtime": runtime,
        "generator": generator.name,
        "order": args.order,
        "questions": len(rows),
        "model_read": len(read),
        "load_s": round(load_s, 2),
        "warm_up_s": None if warm_up_s is None else round(warm_up_s, 2),
        # the first question read in each language: what a prefix not yet prefilled costs
        "first_read_first_token": {
            lang: next((r["first_token"] for r in read if r["lang"] == lang), None) for lang in ("en", "es")
        },
        "first_token_p50": statistics.median(firsts),
        "first_token_p95": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
        "total_p50": statistics.median(r["total"] for r in read),
        "load_average_mean": round(statistics.mean(r["load"] for r in rows), 2),
        "rows": rows,
    }
    if runtime == "llama.cpp":  # which CPU features the llama.cpp build uses (AVX2 only, AVX-512)
        import llama_cpp

        report["llama_cpp_system_info"] = llama_cpp.llama_print_system_info().decode().strip()
    RESULTS.mkdir(exist_ok=True)
    name = args.out or f"first_token-{runtime}-{args.order}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
