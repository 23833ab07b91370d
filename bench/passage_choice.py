"""Which passage the generator answers from, by the number of passages it is shown (``top_k``).

Retrieval ranks the gold answer first for about 2 in 3 dev questions, yet the e2e citation hit is
about 0.5: the 0.5B generator, shown three passages, often answers from a neighbour (another FAQ
entry on a nearby topic, the other language's copy of the answer). This script asks a seeded sample
of the dev set's answerable questions (``--per-group`` per product and language) against the index
of every product's answers, once per ``k``, with no refusal gate (every question decoded, as
``eval_lopo.py e2e`` does), and records which ranks the answer cites and whether the gold file is
among them. Only the number of passages changes between the runs.

    python bench/passage_choice.py --k 3,1      # /work/lopo (eval_lopo.py build) -> results/passage_choice.json

Each ``k``'s rows go to ``<work>/passage_choice/k<K>.jsonl`` as they finish (a rerun resumes);
the summary compares the questions asked under every ``k`` (``--no-run``: those recorded so far).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_lopo
import lopo_data

from rag.generate import runtime_for

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/work/lopo", help="eval_lopo.py's work folder")
    parser.add_argument("--k", default="3,1", help="passages shown to the generator, one run each")
    parser.add_argument("--per-group", type=int, default=20, help="questions per product and language")
    parser.add_argument("--no-run", action="store_true", help="only summarise the rows recorded so far")
    parser.add_argument("--out", default="passage_choice", help="the summary's name under bench/results/")
    args = parser.parse_args(argv)
    work = Path(args.work)
    ks = [int(k) for k in args.k.split(",")]
    sample = _sample(args.per_group)
    settings = eval_lopo._settings(work)
    if not args.no_run:
        models = None  # the embedder and generator, loaded once for every k that has questions left
        for k in ks:
            done = {row["id"] for row in _load(work, k)}
            todo = [q for q in sample if q.id not in done]
            if todo:
                models = models or eval_lopo._models(work)
                _run(work, k, todo, models)
    rows = {k: {row["id"]: row for row in _load(work, k)} for k in ks}
    paired = [q.id for q in sample if all(q.id in rows[k] for k in ks)]  # asked under every k
    report = {
        "command": "python bench/passage_choice.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "generator": f"{settings.generator} on {runtime_for(settings)}",
        "questions": len(sample),
        "paired": len(paired),
        "by_k": {k: _summary([rows[k][i] for i in paired]) for k in ks},
    }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def _sample(per_group: int) -> list[lopo_data.DevQuestion]:
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for q in lopo_data.questions():
        if q.kind == "answerable":
            groups[q.product, q.lang].append(q)
    rng = random.Random(1)
    return [q for g in sorted(groups) for q in rng.sample(groups[g], min(per_group, len(groups[g])))]


def _path(work: Path, k: int) -> Path:
    return work / "passage_choice" / f"k{k}.jsonl"


def _load(work: Path, k: int) -> list[dict]:
    path = _path(work, k)
    return [json.loads(line) for line in path.open()] if path.is_file() else []


def _run(work: Path, k: int, todo: list[lopo_data.DevQuestion], models) -> None:
    """Ask ``todo`` with ``k`` passages shown; rows appended to ``_path(work, k)``."""
    path = _path(work, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = eval_lopo._engines(work, ["index-all"], models, refusal_model=eval_lopo._never_refusing(models))[
        "index-all"
    ]
    engine.settings = engine.settings.replace(min_relevance=0.0, top_k=k)
    with path.open("a", encoding="utf-8") as out:
        for i, q in enumerate(todo, 1):
            start = time.perf_counter()
            answer = engine.ask(q.question)
            ranked = engine.retrieve(q.question, k=3)  # the gold's rank among the first three
            gold_rank = next((p.rank for p in ranked if p.source.endswith(q.gold)), None)
            ranks = [
                next((p.rank for p in ranked if p.chunk_id == c.chunk_id), None) for c in answer.citations
            ]
            row = {
                "id": q.id,
                "product": q.product,
                "lang": q.lang,
                "gold_rank": gold_rank,
                "refused": answer.refused,
                "extracted": answer.extracted,
                "unsupported": answer.unsupported,
                "hit": any(c.source.endswith(q.gold) for c in answer.citations),
                "cited_ranks": ranks,
                "text": answer.text[:300],
                "seconds": round(time.perf_counter() - start, 2),
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            if i % 20 == 0 or i == len(todo):
                print(f"k={k}: {i}/{len(todo)}", file=sys.stderr, flush=True)
    engine.close()


def _summary(rows: list[dict]) -> dict:
    """Citation hit over all rows and split by the gold's rank; by product and language."""

    def hits(selected: list[dict]) -> dict:
        return (
            {"n": len(selected), "citation_hit": round(sum(r["hit"] for r in selected) / len(selected), 3)}
            if selected
            else {"n": 0}
        )

    by_group: dict[str, list] = defaultdict(list)
    for r in rows:
        by_group[f"{r['product']}/{r['lang']}"].append(r)
    return {
        "all": hits(rows),
        "gold_rank_1": hits([r for r in rows if r["gold_rank"] == 1]),
        "gold_rank_2_3": hits([r for r in rows if r["gold_rank"] in (2, 3)]),
        "gold_not_in_top_3": hits([r for r in rows if r["gold_rank"] is None]),
        "uncited": sum(r["unsupported"] for r in rows),
        "quoted": sum(r["extracted"] for r in rows),
        "by_group": {g: hits(rs) for g, rs in sorted(by_group.items())},
    }


if __name__ == "__main__":
    main()
