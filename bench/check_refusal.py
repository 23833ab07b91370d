"""The refusal threshold on real manuals: best dense cosine of answerable vs unanswerable questions.

Reads ``corpus/questions.jsonl`` (answerable questions with a gold page, and unanswerable ones) and
an index of ``corpus/`` (``docqa ingest corpus/``); prints each question's relevance (the engine's
``rag.refusal.relevance``) and whether the configured threshold would refuse it.

    python bench/check_refusal.py --index /tmp/corpus-index
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ingest.settings import load_settings
from rag.engine import open_engine
from rag.refusal import min_relevance_for, relevance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(index_dir=args.index)
    questions = [json.loads(line) for line in (ROOT / "corpus" / "questions.jsonl").open(encoding="utf-8")]
    rows = []
    with open_engine(settings) as engine:
        threshold = min_relevance_for(settings, engine.embedder.name)
        for q in questions:
            score = relevance(engine.retrieve(q["question"]))
            rows.append({"id": q["id"], "answerable": q.get("answerable", False), "relevance": score})
    rows.sort(key=lambda r: r["relevance"])
    print(f"threshold {threshold:.3f} ({engine.embedder.name})")
    for r in rows:
        verdict = "refused" if r["relevance"] < threshold else "answered"
        print(
            f"  {r['relevance']:.3f}  {'answerable  ' if r['answerable'] else 'UNANSWERABLE'}  {r['id']:10} {verdict}"
        )
    pos = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]
    kept = sum(r["relevance"] >= threshold for r in pos)
    refused = sum(r["relevance"] < threshold for r in neg)
    print(f"answerable kept {kept}/{len(pos)}, unanswerable refused {refused}/{len(neg)}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"check_refusal-{engine.embedder.name}.json"
    out.write_text(json.dumps({"threshold": threshold, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
