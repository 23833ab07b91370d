"""Generator runtimes side by side: torch fp32 against llama.cpp on the same 4-bit GGUF weights.

The same docqa prompts (``rag.prompt.build_prompt`` over real dev-set FAQ answers, English and
Spanish: three passages each, the gold answer among two others of its product; plus one question
per language over another product's answers, which should be refused) go to each runtime in its
own process, so its peak RSS is its own. Rounds are interleaved (torch, llama.cpp, then llama.cpp,
torch, ...) so both see the same background load. Per prompt and runtime:

- prefill tokens/s: the whole prompt from an empty cache, logits of the last token only;
- first token: as the engine runs a question: the refusal probe (``continuation_probability`` of
  the refusal sentence) and then ``stream`` up to the first piece, with the rules and worked
  examples already prefilled by an earlier question in that language;
- decode tokens/s: answer tokens after the first / the time after the first piece;
- the refusal sentence's probability, and the greedy answer (are the runtimes' answers identical);
- per process: load time, peak RSS (``getrusage``: the whole process, no tracing).

CPU times depend on what else runs: the load average is recorded. Results:
``bench/results/bench_runtimes.json`` and a markdown table on stdout (bench/README.md).

    python bench/bench_runtimes.py                          # 0.5B, 2 rounds, 8 prompts
    python bench/bench_runtimes.py --models qwen2.5-coder-1.5b-instruct --rounds 1 --limit 2 \
        --out bench/results/bench_runtimes-1.5b.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
QUESTIONS = ROOT.parent / "shared" / "eval" / "faq-dev" / "questions.jsonl"
RUNTIMES = ("torch", "llama.cpp")
# (source, question index within it, gold rank); the other passages are that source's next answers.
ANSWERABLE = [
    ("weechat-faq-en", 4, 1),
    ("harden-faq-en", 2, 2),
    ("python-faq-en", 10, 3),
    ("weechat-faq-es", 4, 1),
    ("harden-faq-es", 2, 2),
    ("weechat-faq-es", 11, 3),
]
# A question asked over another product's answers: nothing there answers it.
UNANSWERABLE = [("zsh-faq-en", 5, "python-faq-en"), ("weechat-faq-es", 20, "harden-faq-es")]
WARMUP = {"en": ("r-faq-en", 5), "es": ("weechat-faq-es", 30)}  # fills the prefix cache first


def _passage(row: dict, rank: int):
    from ingest.records import Passage

    return Passage(
        row["id"], f"{row['source']}/{row['id']}.txt", row["answer"], None, "", row["lang"], 1.0, rank
    )


def build_prompts(count_tokens, context_tokens: int = 300) -> list[dict]:
    """The benchmark's prompts as JSON-ready dicts: id, lang, answerable, messages."""
    from rag.prompt import build_prompt

    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"] + "-" + row["lang"], []).append(row)

    def prompt(pid: str, question_row: dict, context: list[dict], answerable: bool) -> dict:
        passages = [_passage(r, i + 1) for i, r in enumerate(context)]
        messages = build_prompt(
            question_row["question"],
            passages,
            language=question_row["lang"],
            budget_tokens=context_tokens,
            count_tokens=count_tokens,
        )
        return {
            "id": pid,
            "lang": question_row["lang"],
            "answerable": answerable,
            "question": question_row["question"],
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }

    out: list[dict] = []
    for source, index, gold_rank in ANSWERABLE:
        pool = by_source[source]
        gold = pool[index]
        others = [pool[(index + j) % len(pool)] for j in (1, 2)]
        context = [*others[: gold_rank - 1], gold, *others[gold_rank - 1 :]]
        out.append(prompt(gold["id"], gold, context, True))
    for source, index, other in UNANSWERABLE:
        question = by_source[source][index]
        out.append(prompt(question["id"] + "-unanswerable", question, by_source[other][:3], False))
    # Per language: one answerable, the unanswerable one, the other answerable ones (--limit keeps
    # the first N of each language).
    out.sort(key=lambda p: (p["lang"], p["answerable"]))
    for lang in ("en", "es"):
        mine = [p for p in out if p["lang"] == lang]
        out = [p for p in out if p["lang"] != lang] + [mine[1], mine[0], *mine[2:]]
    for lang, (source, index) in WARMUP.items():
        row = by_source[source][index]
        pool = by_source[source]
        out.append(
            {**prompt(f"warmup-{lang}", row, [row, *pool[index + 1 : index + 3]], True), "warmup": True}
        )
    return out


# ---------------------------------------------------------------- one runtime, in its own process


def _cold_prefill(generator, ids: list[int]) -> float:
    """Seconds to prefill ``ids`` from an empty cache (last token's logits only)."""
    if generator.runtime == "torch":
        import torch

        with torch.inference_mode():
            start = time.perf_counter()
            generator._model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            return time.perf_counter() - start
    llm = generator._llm
    start = time.perf_counter()
    llm.n_tokens = 0
    generator._logits_n = -1
    llm.eval(ids)
    return time.perf_counter() - start


def _prompt_ids(generator, messages) -> list[int]:
    ids = generator.prompt_ids(messages)
    return ids[0].tolist() if hasattr(ids, "shape") else list(ids)


def worker(model: str, runtime: str, prompts: list[dict], threads: int, max_new_tokens: int) -> dict:
    import psutil

    from ingest.records import Message
    from ingest.settings import load_settings
    from rag.generate import load_generator
    from rag.refusal import refusal

    settings = load_settings().replace(generator=model, generator_runtime=runtime, threads=threads)
    start = time.perf_counter()
    generator = load_generator(settings)
    load_s = time.perf_counter() - start
    rss_loaded = psutil.Process().memory_info().rss
    warmups = {p["lang"]: p for p in prompts if p.get("warmup")}
    results = []
    for p in prompts:
        if p.get("warmup"):
            continue
        messages = [Message(m["role"], m["content"]) for m in p["messages"]]
        warm = [Message(m["role"], m["content"]) for m in warmups[p["lang"]]["messages"]]
        generator.continuation_probability(warm, refusal(p["lang"]))  # rules + examples cached
        start = time.perf_counter()
        probability = generator.continuation_probability(messages, refusal(p["lang"]))
        probe_s = time.perf_counter() - start
        first, pieces = None, []
        for piece in generator.stream(messages, max_new_tokens):
            first = first if first is not None else time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        text = "".join(pieces)
        tokens = generator.count_tokens(text)
        ids = _prompt_ids(generator, messages)
        prefill_s = _cold_prefill(generator, ids)
        results.append(
            {
                "id": p["id"],
                "lang": p["lang"],
                "answerable": p["answerable"],
                "prompt_tokens": len(ids),
                "prefill_s": prefill_s,
                "prefill_tokens_per_s": len(ids) / prefill_s,
                "probe_s": probe_s,
                "first_token_s": (first - start) if first is not None else None,
                "answer_tokens": tokens,
                "decode_tokens_per_s": (tokens - 1) / (end - first) if first and tokens > 1 else None,
                "refusal_probability": probability,
                "text": text,
            }
        )
    return {
        "model": model,
        "runtime": runtime,
        "threads": threads,
        "load_s": load_s,
        "rss_after_load_mb": rss_loaded / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
        "loadavg_end": os.getloadavg()[0],
        "prompts": results,
    }


# ---------------------------------------------------------------- the comparison


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict]) -> dict:
    """Per model and runtime: medians over prompts and rounds; per prompt: both runtimes' results."""
    out: dict = {}
    for model in sorted({r["model"] for r in runs}):
        per_runtime = {}
        for runtime in RUNTIMES:
            mine = [r for r in runs if r["model"] == model and r["runtime"] == runtime]
            if not mine:
                continue
            rows = [p for r in mine for p in r["prompts"]]
            per_runtime[runtime] = {
                "prefill_tokens_per_s": _median(p["prefill_tokens_per_s"] for p in rows),
                "decode_tokens_per_s": _median(p["decode_tokens_per_s"] for p in rows),
                "first_token_s_median": _median(p["first_token_s"] for p in rows),
                "first_token_s_max": max(p["first_token_s"] or 0 for p in rows),
                "probe_s": _median(p["probe_s"] for p in rows),
                "load_s": _median(r["load_s"] for r in mine),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "answers_same_every_round": all(
                    len({p["text"] for r in mine for p in r["prompts"] if p["id"] == pid}) == 1
                    for pid in {p["id"] for p in rows}
                ),
            }
        prompts = []
        first_round = {
            rt: next((r for r in runs if r["model"] == model and r["runtime"] == rt), None) for rt in RUNTIMES
        }
        if all(first_round.values()):
            for a, b in zip(
                first_round["torch"]["prompts"], first_round["llama.cpp"]["prompts"], strict=True
            ):
                prompts.append(
                    {
                        "id": a["id"],
                        "lang": a["lang"],
                        "answerable": a["answerable"],
                        "prompt_tokens": a["prompt_tokens"],
                        "refusal_probability": {
                            "torch": a["refusal_probability"],
                            "llama.cpp": b["refusal_probability"],
                        },
                        "same_answer": a["text"] == b["text"],
                        "answers": {"torch": a["text"], "llama.cpp": b["text"]},
                    }
                )
        out[model] = {"runtimes": per_runtime, "prompts": prompts}
    return out


def table(summary: dict) -> str:
    lines = [
        "| model | runtime | prefill tok/s | decode tok/s | first token p50 / max (s) | refusal probe (s) | load (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, s in summary.items():
        for runtime, r in s["runtimes"].items():
            lines.append(
                f"| {model} | {runtime} | {r['prefill_tokens_per_s']:.0f} | {r['decode_tokens_per_s']:.1f} | "
                f"{r['first_token_s_median']:.2f} / {r['first_token_s_max']:.2f} | {r['probe_s']:.2f} | "
                f"{r['load_s']:.1f} | {r['peak_rss_mb']:,.0f} |"
            )
    lines += [
        "",
        "| model | prompt | tokens | P(refusal) torch | P(refusal) llama.cpp | same greedy answer |",
        "|---|---|---|---|---|---|",
    ]
    for model, s in summary.items():
        for p in s["prompts"]:
            prob = p["refusal_probability"]
            lines.append(
                f"| {model} | {p['id']} | {p['prompt_tokens']} | {prob['torch']:.4f} | {prob['llama.cpp']:.4f} | "
                f"{'yes' if p['same_answer'] else 'no'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b-instruct"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="Prompts per language (0: all 4).")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_runtimes.json")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "RUNTIME"), help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
        result = worker(args.worker[0], args.worker[1], prompts, args.threads, args.max_new_tokens)
        print(json.dumps(result))
        return

    from transformers import AutoTokenizer

    from ingest.registry import resolve_model
    from ingest.settings import load_settings

    settings = load_settings()
    folder = resolve_model(args.models[0], "generator", settings.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    prompts = build_prompts(lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    if args.limit:
        kept = {
            lang: [p for p in prompts if p["lang"] == lang and not p.get("warmup")] for lang in ("en", "es")
        }
        keep = {p["id"] for mine in kept.values() for p in mine[: args.limit]}
        prompts = [p for p in prompts if p["id"] in keep or p.get("warmup")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prompts_file = args.out.with_suffix(".prompts.json")
    prompts_file.write_text(json.dumps(prompts, ensure_ascii=False, indent=1), encoding="utf-8")

    report: dict = {
        "loadavg_start": os.getloadavg()[0],
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "runs": [],
    }
    for model in args.models:
        for round_ in range(args.rounds):
            order = RUNTIMES if round_ % 2 == 0 else RUNTIMES[::-1]
            for runtime in order:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    model,
                    runtime,
                    "--prompts",
                    str(prompts_file),
                    "--threads",
                    str(args.threads),
                    "--max-new-tokens",
                    str(args.max_new_tokens),
                ]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{model} on {runtime} failed:\n{done.stderr[-3000:]}")
                run = json.loads(done.stdout.strip().splitlines()[-1])
                run["round"] = round_
                report["runs"].append(run)
                speeds = [p["decode_tokens_per_s"] or 0 for p in run["prompts"]]
                print(
                    f"{model} {runtime} round {round_}: decode {statistics.median(speeds):.1f} tok/s, "
                    f"peak RSS {run['peak_rss_mb']:,.0f} MB, load average {run['loadavg_end']:.1f}",
                    file=sys.stderr,
                )
    report["loadavg_end"] = os.getloadavg()[0]
    report["summary"] = summarise(report["runs"])
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print(table(report["summary"]))


if __name__ == "__main__":
    main()
