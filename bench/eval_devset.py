"""Build the dev-set index from ../shared/eval/faq-dev and run ``docqa eval`` on it.

The documents are each chosen product's manual pages (``corpus/<product>-faq-<lang>/*.txt``) and
every FAQ answer as a document of its own (``answers/<question id>.txt``, the answer text without
its question). A question's gold is its own answer file, so retrieval is scored as "did the
answer come back". With ``--unanswerable N``, N questions of the other products are added as
unanswerable (the right answer is a refusal).

The folder, the index and the runs live under ``--work`` (default /tmp/docqa-devset); ingestion is
incremental, so a second run reuses the index. The summary is also written to
``bench/results/eval_devset-<products>-<embedder>[-retrieval].json`` with the command that made it.

    python bench/eval_devset.py --products weechat,harden --embedder all-minilm-l6-v2 --retrieval-only
    python bench/eval_devset.py --products weechat,harden --limit 8 --unanswerable 4

The whole set (5 products, ~12k chunks) takes 1-2 hours to embed with EmbeddingGemma on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev"
RESULTS = Path(__file__).resolve().parent / "results"
PRODUCTS = ("python", "r", "zsh", "weechat", "harden")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from ingest.embedders import load_embedder
    from ingest.pipeline import ingest_folder
    from ingest.settings import load_settings
    from rag.engine import open_engine
    from rag.evaluate import evaluate, load_questions
    from rag.evaluate.report import format_table, write_report
    from rag.retrieve import dense_weight_for

    products = _products(args.products)
    key = "+".join(products)
    work = Path(args.work)
    settings = load_settings(index_dir=work / f"index-{key}-{args.embedder}", embedder=args.embedder)
    every = [json.loads(line) for line in (DEV / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = work / f"docs-{key}"
    questions = work / f"questions-{key}-u{args.unanswerable}.jsonl"
    _write_folder(every, products, docs)
    _write_questions(every, products, args.unanswerable, questions)
    embedder = load_embedder(settings)
    report = ingest_folder(docs, settings.index_dir, embedder, settings, progress=LogProgress())
    print(
        f"index {settings.index_dir}: {len(report.added)} added, {len(report.unchanged)} unchanged, "
        f"{report.chunks_added} chunks embedded in {report.seconds:.0f} s",
        file=sys.stderr,
    )
    for skipped in report.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    mode = "-retrieval" if args.retrieval_only else ""
    out = Path(args.out or work / "runs" / f"{key}-{args.embedder}{mode}")
    with open_engine(settings, embedder=embedder) as engine:
        run = evaluate(
            load_questions(questions),
            engine,
            out_dir=out,
            retrieval_only=args.retrieval_only,
            k=args.k,
            limit=args.limit,
            sample=args.sample,
            seed=args.seed,
            resume=not args.restart,
            describe={
                "embedder": embedder.name,
                "products": key,
                "top_k": settings.top_k,
                "dense_weight": dense_weight_for(settings.dense_weight, embedder.name),
                "generator": None if args.retrieval_only else settings.generator,
            },
        )
    print(format_table(run.summary))
    print(f"report: {write_report(run)}")
    RESULTS.mkdir(exist_ok=True)
    summary = RESULTS / f"eval_devset-{key}-{args.embedder}{mode}.json"
    command = "python bench/eval_devset.py " + " ".join(argv if argv is not None else sys.argv[1:])
    summary.write_text(
        json.dumps(
            {
                "command": command,
                "config": run.config,
                "summary": run.summary,
                "chunks": _chunks(settings.index_dir),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"summary: {summary}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--products", default=",".join(PRODUCTS), help="comma-separated, of " + ", ".join(PRODUCTS)
    )
    parser.add_argument("--embedder", default="embeddinggemma-300m", help="a bundled embedder name")
    parser.add_argument("--retrieval-only", action="store_true", help="no generation")
    parser.add_argument("--unanswerable", type=int, default=0, help="add N questions of other products")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/docqa-devset", help="documents, index and runs")
    parser.add_argument("--out", default=None, help="run folder (default under --work)")
    parser.add_argument("--restart", action="store_true", help="start over instead of resuming the run")
    return parser


def _products(text: str) -> list[str]:
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PRODUCTS]
    if unknown or not chosen:
        raise SystemExit(f"unknown product {unknown}: choose from {', '.join(PRODUCTS)}")
    return sorted(chosen, key=PRODUCTS.index)


def _product(question: dict) -> str:
    return question["source"].split("-")[0]


def _write_folder(questions: list[dict], products: list[str], docs: Path) -> None:
    """Manual pages and one file per answer; files already right are left alone."""
    for folder in sorted((DEV / "corpus").iterdir()):
        if folder.name.split("-")[0] in products:
            for page in sorted(folder.glob("*.txt")):
                _put(docs / "manual" / folder.name / page.name, page.read_text(encoding="utf-8"))
    for q in questions:
        if _product(q) in products:
            _put(docs / "answers" / f"{q['id']}.txt", q["answer"] + "\n")


def _write_questions(questions: list[dict], products: list[str], unanswerable: int, path: Path) -> None:
    """Gold = the question's answer file; for answers with the same text (a few Spanish FAQ
    answers are the English ones) the file the index keeps: ingestion indexes identical files
    once, under the first path."""
    kept: dict[str, str] = {}
    for q in sorted(questions, key=lambda q: q["id"]):
        kept.setdefault(q["answer"], f"answers/{q['id']}.txt")
    rows = [
        {
            "id": q["id"],
            "lang": q["lang"],
            "question": q["question"],
            "answer": q["answer"],
            "gold": kept[q["answer"]],
        }
        for q in questions
        if _product(q) in products
    ]
    others = [q for q in questions if _product(q) not in products]
    for q in random.Random(0).sample(others, min(unanswerable, len(others))):
        rows.append({"id": q["id"], "lang": q["lang"], "question": q["question"], "answerable": False})
    _put(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _put(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _chunks(index_dir: Path) -> int:
    from ingest.store import open_index

    with open_index(index_dir) as index:
        return index.count()


class LogProgress:
    """Prints where ingestion stands every 30 seconds (a bar would flood a log file)."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, p) -> None:
        if time.monotonic() - self.last >= 30 or p.bytes_done >= p.bytes_total:
            self.last = time.monotonic()
            print(
                f"ingest: files {p.files_done}/{p.files_total}, chunks {p.chunks_done}, "
                f"{p.bytes_done / max(p.bytes_total, 1):.0%} of the bytes",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    main()
