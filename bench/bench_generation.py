"""Generation speed with the default generator: prompt size -> time to first token, and tokens/s.

Part 1 answers a typical question (English, Spanish) from an index of the sample manuals with
k = 1, 2, 3, 5 passages and reports prompt tokens (exact, the chat-formatted prompt; "new" = those
after the rules and worked examples, which the generator keeps prefilled), time to first token,
total time and decode speed; each setting runs ``--repeat`` times and the fastest is kept. Part 2 asks the same questions through the engine, with and without the refusal probe (its cost
on the first token). Part 3 feeds prompts of fixed sizes to the model alone to fit
first-token time ~ a + b * prompt tokens, the lever for choosing k and the passage budget.
CPU times depend on what else runs: the load average is recorded with every run.

    python bench/bench_generation.py --index /tmp/corpus-index
    python bench/bench_generation.py --index /tmp/corpus-index --ks 3 --sizes 0 --max-new-tokens 96
    python bench/bench_generation.py --index /tmp/corpus-index --generator qwen2.5-coder-1.5b-instruct \
        --ks 3 --budgets 300 --sizes 0 --repeat 1      # the quality option
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ingest.lang import detect_language
from ingest.records import Message
from ingest.settings import load_settings
from rag.answer import build_answer
from rag.engine import Engine, open_engine
from rag.prompt import build_prompt, fit_passages

RESULTS = Path(__file__).resolve().parent / "results"
QUESTIONS = [
    "What is the frequency range of the sine/triangular wave generator WG?",
    "¿Qué rango de voltaje admiten las entradas A1 y A2?",
]


def _time_stream(generator, messages: list[Message], max_new_tokens: int) -> dict:
    prompt_tokens = int(generator.prompt_ids(messages).shape[1])
    start = time.perf_counter()
    first, text = None, ""
    for piece in generator.stream(messages, max_new_tokens):
        first = first if first is not None else time.perf_counter() - start
        text += piece
    total = time.perf_counter() - start
    tokens = generator.count_tokens(text)
    decode = (tokens - 1) / (total - first) if first is not None and tokens > 1 and total > first else 0.0
    return {
        "prompt_tokens": prompt_tokens,
        "first_token_s": first,
        "total_s": total,
        "answer_tokens": tokens,
        "decode_tokens_per_s": decode,
        "text": text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 600, 1000])
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 1200], help="passage token budgets")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the fastest is kept")
    parser.add_argument("--generator", help="another generator (default: the settings' one)")
    parser.add_argument(
        "--out", type=Path, help="results file (default: bench/results/bench_generation[-NAME].json)"
    )
    args = parser.parse_args()
    settings = load_settings(index_dir=args.index).replace(max_new_tokens=args.max_new_tokens)
    if args.generator:
        settings = settings.replace(generator=args.generator)
    report: dict = {"load_average_start": os.getloadavg()[0], "runs": [], "engine": [], "sizes": []}
    with open_engine(settings) as engine:
        t0 = time.perf_counter()
        generator = engine.generator
        report["load_s"] = time.perf_counter() - t0
        generator_name = generator.name
        list(generator.stream([Message("user", "Hi")], 2))  # first call pays one-off set-up
        print(f"{generator_name}: loaded in {report['load_s']:.1f} s; load average {os.getloadavg()[0]:.1f}")
        print(
            f"\n{'question':10} {'k':>2} {'bdgt':>4} | {'prompt tok':>10} | {'new tok':>7} | {'1st tok s':>9} | {'total s':>7} | tok/s"
        )
        for q in QUESTIONS:
            lang = detect_language(q)
            for k, budget in [(k, b) for k in args.ks for b in args.budgets]:
                passages = engine.retrieve(q, k=k)
                messages = build_prompt(
                    q,
                    passages,
                    language=lang,
                    budget_tokens=budget,
                    count_tokens=generator.count_tokens,
                )
                fixed = int(generator.prompt_ids(messages[:-1], generation_prompt=False).shape[1])
                best = None
                for _ in range(args.repeat):  # the machine is shared: keep the fastest run
                    r = _time_stream(generator, messages, args.max_new_tokens)
                    best = r if best is None or r["first_token_s"] < best["first_token_s"] else best
                shown = fit_passages(passages, budget, generator.count_tokens, q)
                answer = build_answer(q, best["text"], shown)
                run = {"question": q, "k": k, "budget": budget, "cached_prefix_tokens": fixed, **best}
                run["citations"] = [f"{c.source} p. {c.page}" for c in answer.citations]
                report["runs"].append(run)
                print(
                    f"{q[:10]:10} {k:2d} {budget:4d} | {best['prompt_tokens']:10d} | {best['prompt_tokens'] - fixed:7d} | "
                    f"{best['first_token_s']:9.2f} | {best['total_s']:7.2f} | {best['decode_tokens_per_s']:5.1f}   "
                    f"{answer.text[:50]!r} {run['citations']}",
                    flush=True,
                )
        print("\nthrough the engine (retrieval, prompt, refusal probe, first token):")
        for q in QUESTIONS:
            for probe in (False, True):  # refusal_probability 1 skips the probe
                changed = settings.replace(refusal_probability=-1.0 if probe else 1.0)
                probed = Engine(changed, engine.index, engine.embedder, generator)
                # One run each: a second would find the whole prompt cached by the first probe.
                best = probed.ask(q)
                t = best.timings
                report["engine"].append(
                    {"question": q, "probe": probe, "first_token_s": t.first_token, "total_s": t.total,
                     "retrieve_s": t.retrieve, "refused": best.refused, "refusal_score": best.refusal_score}
                )  # fmt: skip
                print(
                    f"{q[:10]:10} probe {'on ' if probe else 'off'} | first token {t.first_token:5.2f} s | "
                    f"total {t.total:5.2f} s | refused {best.refused} (p {best.refusal_score})",
                    flush=True,
                )
        filler = "The oscilloscope shows the voltage on A1 against time. " * 200
        sizes = [s for s in args.sizes if s > 0]
        if sizes:
            print(f"\n{'prompt tok':>10} | {'1st tok s':>9} (model alone, 8 new tokens)")
        for size in sizes:
            words = filler.split()[: int(size * 0.75)]
            messages = [Message("user", " ".join(words) + "\nSummarise in one sentence.")]
            r = _time_stream(generator, messages, 8)
            report["sizes"].append({k: v for k, v in r.items() if k != "text"})
            print(f"{r['prompt_tokens']:10d} | {r['first_token_s']:9.2f}", flush=True)
    if len(report["sizes"]) >= 2:
        xs = [r["prompt_tokens"] for r in report["sizes"]]
        ys = [r["first_token_s"] for r in report["sizes"]]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        a = my - b * mx
        report["fit"] = {
            "a_s": a,
            "ms_per_prompt_token": 1000 * b,
            "tokens_for_3s": (3 - a) / b if b else None,
        }
        print(
            f"\nfirst token ~ {a:.2f} s + {1000 * b:.2f} ms x prompt tokens -> 3 s at {(3 - a) / b:.0f} tokens"
        )
    report["generator"] = generator_name
    report["load_average_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    default = load_settings().generator
    name = "bench_generation.json" if generator_name == default else f"bench_generation-{generator_name}.json"
    out = args.out or RESULTS / name
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
