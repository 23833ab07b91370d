"""End to end on the table questions: is the row's value in the answer, tables read as tables or not.

Over the indexes ``bench/bench_table_qa.py`` builds (the WeeChat guide as PDF or HTML, with
``tables = "off"`` and ``"on"``, the sample manuals beside it), each of the 24 questions of
``bench/data/table_questions.jsonl`` is asked through the engine with the default generator and
runtime. An answer is correct when it is not a refusal and holds every key cell of the gold row
that the question does not already name (``cells``, e.g. "/usr/local" for "What is the default
of CMAKE_INSTALL_PREFIX?"; whitespace, case and table pipes ignored); it cites the gold place when
one citation is the gold file (and page, for the PDF). Writes ``bench/results/table_answers.json``;
``--rescore`` scores the answers saved there again (no model).

    python bench/bench_table_qa.py            # builds the four indexes (MiniLM)
    python bench/bench_table_answers.py       # then asks
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_table_qa import QUESTIONS, WORK, _normal  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def ask_all(kind: str, tables: str, embedder_name: str, questions: list[dict]) -> dict:
    """Every question through the engine over one index; per question: correct, cited, refused."""
    from ingest.settings import load_settings
    from rag.engine import open_engine

    index = WORK / f"index-{kind}-{tables}-{embedder_name}"
    if not index.is_dir():
        raise SystemExit(f"no index {index}: run bench/bench_table_qa.py --embedder {embedder_name} first")
    settings = load_settings(
        env={}, index_dir=index, embedder=embedder_name, tables="off" if tables == "off" else "on"
    )
    rows = {}
    with open_engine(settings) as engine:
        for q in questions:
            gold_file, gold_page = (q["html"], None) if kind == "html" else q["gold"].split("#")
            answer = engine.ask(q["question"])
            cited = any(
                c.source == gold_file and (gold_page is None or c.page == int(gold_page))
                for c in answer.citations
            )
            correct = not answer.refused and is_correct(q, answer.text)
            rows[q["id"]] = {
                "correct": correct,
                "cited": cited,
                "refused": answer.refused,
                "text": answer.text,
            }
            print(
                f"{kind} {tables} {q['id']}: {'ok ' if correct else '-- '} {answer.text[:90]!r}",
                file=sys.stderr,
            )
    return rows


def is_correct(question: dict, text: str) -> bool:
    """Whether ``text`` holds every key cell of the gold row the question does not name.

    >>> q = {"question": "Default of CMAKE_INSTALL_PREFIX?", "cells": ["CMAKE_INSTALL_PREFIX", "/usr/local"]}
    >>> is_correct(q, "It is /usr/local [1]."), is_correct(q, "directory [1]")
    (True, False)
    """
    asked = _normal(question["question"])
    wanted = [_normal(cell) for cell in question["cells"] if _normal(cell) not in asked]
    return bool(wanted) and all(cell in _normal(text) for cell in wanted)


def _table(report: dict) -> None:
    print("| guide | tables | correct | cites the gold place | refused |")
    print("|---|---|---|---|---|")
    for name, run in report["runs"].items():
        kind, tables = name.split("/")
        n = run["questions"]
        print(
            f"| {kind} | {tables} | {run['correct']}/{n} | {run['cited_gold']}/{n} | {run['refused']}/{n} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--kinds", nargs="*", default=["pdf", "html"], choices=["pdf", "html"])
    parser.add_argument("--rescore", action="store_true", help="score the saved answers again")
    parser.add_argument(
        "--tables",
        nargs="*",
        default=["off", "on"],
        help="the indexes' table variants (bench_table_qa --tables)",
    )
    parser.add_argument("--out", default="table_answers.json", help="results file under bench/results")
    args = parser.parse_args()
    questions = [
        json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    if args.rescore:
        report = json.loads((RESULTS / args.out).read_text())
        by_id = {q["id"]: q for q in questions}
        for run in report["runs"].values():
            for qid, row in run["rows"].items():
                row["correct"] = not row["refused"] and is_correct(by_id[qid], row["text"])
            run["correct"] = sum(r["correct"] for r in run["rows"].values())
    else:
        report = {"command": "python bench/bench_table_answers.py " + " ".join(sys.argv[1:]), "runs": {}}
        for kind in args.kinds:
            for tables in args.tables:
                load = os.getloadavg()[0]
                started = time.perf_counter()
                rows = ask_all(kind, tables, args.embedder, questions)
                report["runs"][f"{kind}/{tables}"] = {
                    "correct": sum(r["correct"] for r in rows.values()),
                    "cited_gold": sum(r["cited"] for r in rows.values()),
                    "refused": sum(r["refused"] for r in rows.values()),
                    "questions": len(rows),
                    "seconds": round(time.perf_counter() - started, 1),
                    "load_average": load,
                    "rows": rows,
                }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    _table(report)


if __name__ == "__main__":
    main()
