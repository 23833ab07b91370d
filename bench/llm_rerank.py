"""Can the bundled generator rerank retrieval's top passages? Two signals, leave-one-product-out.

Issue 10's citation hit is bounded by retrieval's rank 1 (one passage is shown), and no reranker
model is available here, so the generator was tried as one on the dev set's answerable questions,
over the index of every product's answers (``eval_lopo.py build``/``signals`` work folder):

- ``probe``: the refusal probe (``Engine.signals``: the probability that the answer starts with
  the refusal sentence) with each of the top 3 passages shown alone; rank 1's is the stored one
  from ``signals.jsonl``. Rows: ``<work>/probe_rerank.jsonl``.
- ``upr``: query likelihood, log P(question | passage) (UPR, Sachan et al. 2022), the question
  scored after "Passage: ... Write a question that this passage answers." in the chat template,
  top 3, a seeded sample of ``--per-group`` questions per product and language (torch generator).
  Rows: ``<work>/upr.jsonl``.
- ``report``: each signal added to the fused retrieval score with a weight chosen on four
  products (mean R@1 over them) and scored on the fifth, top 2 and top 3 reranked; held-out R@1
  per language against the fused order -> ``results/llm_rerank.json``.

    python bench/llm_rerank.py probe --work /work/lopo09k1     # ~3 s a question (2 probes)
    python bench/llm_rerank.py upr --work /work/lopo09k1 --per-group 25   # ~4 s a question
    python bench/llm_rerank.py report --work /work/lopo09k1
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_lopo
import lopo_data

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = (0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
INSTRUCTION = {
    "en": "Write a question that this passage answers.",
    "es": "Escribe una pregunta que este pasaje responda.",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["probe", "upr", "report"])
    parser.add_argument("--work", default="/work/lopo09k1", help="eval_lopo.py's work folder")
    parser.add_argument("--per-group", type=int, default=25, help="upr: questions per product and language")
    args = parser.parse_args(argv)
    work = Path(args.work)
    {"probe": _probe, "upr": _upr, "report": _report}[args.step](work, args)


def _done(path: Path) -> set[str]:
    return {json.loads(line)["key"] for line in path.open()} if path.is_file() else set()


def _probe(work: Path, args) -> None:
    from rag.engine import check_question

    path = work / "probe_rerank.jsonl"
    done = _done(path)
    questions = {eval_lopo._key(q): q for q in lopo_data.questions()}
    todo = [r for r in eval_lopo._rows(work) if r["answerable"] and r["key"] not in done]
    models = eval_lopo._models(work)
    never = eval_lopo._never_refusing(models)
    engines = eval_lopo._engines(work, sorted({r["index"] for r in todo}), models, refusal_model=never)
    with path.open("a", encoding="utf-8") as out:
        for i, r in enumerate(todo, 1):
            q, engine, lang = questions[r["key"]], engines[r["index"]], r["answer_lang"]
            question = check_question(q.question)
            candidates = []
            for p in engine.retrieve(question, k=3):
                shown, messages = engine.prompt(question, [p], language=lang)
                probability = (
                    r["probability"]  # rank 1 shown alone: the stored probe
                    if p.rank == 1
                    else engine.signals(question, [p], shown, messages, lang).probability
                )
                candidates.append(_candidate(p, q, probability=probability))
            row = {"key": r["key"], "product": r["product"], "lang": r["lang"], "cands": candidates}
            out.write(json.dumps(row) + "\n")
            out.flush()
            if i % 20 == 0:
                print(f"probe {i}/{len(todo)}", file=sys.stderr, flush=True)


def _upr(work: Path, args) -> None:
    import torch

    from rag.engine import check_question

    path = work / "upr.jsonl"
    done = _done(path)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for q in lopo_data.questions():
        if q.kind == "answerable":
            groups[q.product, q.lang].append(q)
    rng = random.Random(7)
    sample = [q for g in sorted(groups) for q in rng.sample(groups[g], min(args.per_group, len(groups[g])))]
    todo = [q for q in sample if eval_lopo._key(q) not in done]
    models = eval_lopo._models(work)
    never = eval_lopo._never_refusing(models)
    engine = eval_lopo._engines(work, ["index-all"], models, refusal_model=never)["index-all"]
    tokenizer, model = models[1]._tokenizer, models[1]._model  # the torch generator's own parts

    def likelihood(passage: str, question: str, lang: str) -> tuple[float, int]:
        chat = [{"role": "user", "content": f"Passage:\n{passage}\n\n{INSTRUCTION[lang]}"}]
        prefix = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        asked = tokenizer(question, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([head + asked]), logits_to_keep=len(asked) + 1).logits
        logp = torch.log_softmax(logits[0, : len(asked)].float(), -1)
        return float(sum(logp[i, t] for i, t in enumerate(asked))), len(asked)

    start = time.perf_counter()
    with path.open("a", encoding="utf-8") as out:
        for i, q in enumerate(todo, 1):
            question = check_question(q.question)
            candidates = []
            for p in engine.retrieve(question, k=3):
                upr, tokens = likelihood(p.text[:1500], question, "es" if q.lang == "es" else "en")
                candidates.append(_candidate(p, q, upr=upr, n=tokens))
            row = {"key": eval_lopo._key(q), "product": q.product, "lang": q.lang, "cands": candidates}
            out.write(json.dumps(row) + "\n")
            out.flush()
            if i % 10 == 0:
                print(f"upr {i}/{len(todo)} {(time.perf_counter() - start) / i:.2f} s/q", file=sys.stderr)


def _candidate(p, q, **signal) -> dict:
    gold = bool(q.gold and p.source.endswith(q.gold))
    return {"rank": p.rank, "score": p.score, "dense": p.dense_score, "lang": p.lang, "gold": gold, **signal}


def _logit(p: float | None) -> float:
    p = min(max(0.5 if p is None else p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


SIGNALS = {
    # higher is better for each: a lower refusal probability, a likelier question
    "probe": ("probe_rerank.jsonl", lambda c: -_logit(c["probability"])),
    "upr": ("upr.jsonl", lambda c: c["upr"]),
    "upr_per_token": ("upr.jsonl", lambda c: c["upr"] / c["n"]),
}


def _r1(rows: list[dict], top: int, weight: float, signal) -> float:
    picked = [max(r["cands"][:top], key=lambda c: c["score"] + weight * signal(c)) for r in rows]
    return float(np.mean([c["gold"] for c in picked])) if picked else float("nan")


def _report(work: Path, args) -> None:
    report: dict = {"command": "python bench/llm_rerank.py report --work " + str(work), "signals": {}}
    for name, (file, signal) in SIGNALS.items():
        path = work / file
        if not path.is_file():
            continue
        rows = [r for r in map(json.loads, path.open()) if r.get("answerable", True)]  # scratch rows
        products = sorted({r["product"] for r in rows})
        by_product = {p: [r for r in rows if r["product"] == p] for p in products}
        entry: dict = {"questions": len(rows)}
        for top in (2, 3):
            held: dict[str, list] = defaultdict(list)
            chosen = {}
            for p in products:
                train = [q for q in products if q != p]
                weight = max(
                    WEIGHTS, key=lambda w: np.mean([_r1(by_product[q], top, w, signal) for q in train])
                )
                chosen[p] = weight
                for lang in ("en", "es"):
                    test = [r for r in by_product[p] if r["lang"] == lang]
                    if test:
                        held[lang].append((_r1(test, top, weight, signal), _r1(test, top, 0, signal)))
            entry[f"top{top}"] = {
                "weights": chosen,
                **{
                    lang: {
                        "reranked_r1": round(float(np.mean([h[0] for h in pairs])), 3),
                        "fused_r1": round(float(np.mean([h[1] for h in pairs])), 3),
                    }
                    for lang, pairs in held.items()
                },
            }
        entry["gold_in_top"] = {
            t: round(float(np.mean([any(c["gold"] for c in r["cands"][:t]) for r in rows])), 3)
            for t in (1, 2, 3)
        }
        report["signals"][name] = entry
        print(name, json.dumps(entry))
    (RESULTS / "llm_rerank.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
