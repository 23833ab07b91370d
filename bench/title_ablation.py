"""Titles and headings in retrieval, each change alone: the embedder's title field, a lexical heading.

EmbeddingGemma's document prompt is ``"title: none | text: "``: docqa gave it no title; its model
card fills that field with the document's title. This script measures, against retrieval without
either (every chunk embedded with no title, BM25 on the chunk text; fused at ``dense_weight`` with
the same-language bonus, as the engine does), each change alone, then both (what docqa now ships:
``ingest.embed.title_of``, ``ingest.lexical.field_counts`` at ``HEADING_WEIGHT``):

- ``title=heading``: every chunk embedded with its heading path in the title field
  (``"title: Install > On Linux | text: ..."``; "none" when it has none);
- ``title=file+heading``: the file's name (without folders and suffix) before the heading path;
- ``heading field xW``: the heading path a BM25 field of weight W beside the text's 1 on the
  lexical side (``ingest.lexical.field_counts``; x1 reads as the heading before the text, x0 is
  the text only).

Documents (indexed once by ``docqa ingest`` at default settings): the sample manuals of
``corpus/`` (eyes17 PDF en/es: outline headings; weechat quickstart HTML en/es) and weechat's FAQ
(HTML en/es from ``../shared/manuals``: one heading per question). Questions, scored apart:
``corpus/questions.jsonl``'s answerable ones (gold page or heading), ``bench/data/
scanned_questions.jsonl`` (gold eyes17 page; here read from the text layer), and the dev set's
weechat FAQ questions (gold: their answer's text in the FAQ page). Every variant is reported on
every set; the heading weight is also chosen on one product's questions (eyes17: the manual and
scanned-page questions; weechat: the quickstart and FAQ questions) and scored on the other's.

    python bench/title_ablation.py            # /work/titles: documents, index, re-embedded vectors
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lopo_data
from tune_fusion import _metrics

from ingest.embed import uses_titles
from ingest.embedders import load_embedder
from ingest.lang import detect_language
from ingest.lexical import HEADING_WEIGHT, LexicalIndex
from ingest.records import Passage
from ingest.settings import load_settings
from ingest.store import open_index
from rag.evaluate.gold import parse_gold, relevance
from rag.retrieve import dense_weight_for, fuse, lexical_query

ROOT = Path(__file__).resolve().parents[1]
MANUALS = ROOT.parent / "shared" / "manuals"
RESULTS = Path(__file__).resolve().parent / "results"
CANDIDATES = 40
TITLE_SLOT = "title: none"
HEADING_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 2.0)


def _lexical_name(weight: float) -> str:
    return "text only" if weight == 0 else f"heading field x{weight:g}"


def _product(set_name: str, question: dict) -> str:
    """The product a question is about: eyes17 (manual, scanned pages) or weechat (quickstart, FAQ)."""
    if set_name == "weechat-faq":
        return "weechat"
    return "eyes17" if question["gold"].startswith("eyes17") else "weechat"


def documents(docs: Path) -> None:
    """The sample manuals and weechat's FAQ in ``docs`` (copied once)."""
    if docs.is_dir():
        return
    for lang in ("en", "es"):
        for src, dst in (
            (ROOT / "corpus" / "eyes17" / lang / "eyes17.pdf", docs / "eyes17" / lang / "eyes17.pdf"),
            (ROOT / "corpus" / "weechat" / f"weechat_quickstart.{lang}.html", None),
            (MANUALS / "weechat" / f"weechat_faq.{lang}.html", None),
        ):
            target = dst or docs / "weechat" / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)


def question_sets() -> dict[str, list[dict]]:
    """Each set's questions: id, lang, question, gold (a ``rag.evaluate.gold`` reference)."""

    def jsonl(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r for r in rows if r.get("answerable", True) and r.get("gold")]

    faq = [
        {"id": Path(q.gold).stem, "lang": q.lang, "question": q.question, "gold": "text:" + q.answer}
        for q in lopo_data.questions()
        if q.kind == "answerable" and q.product == "weechat"
    ]
    return {
        "sample-manuals": jsonl(ROOT / "corpus" / "questions.jsonl"),
        "scanned-pages": jsonl(ROOT / "bench" / "data" / "scanned_questions.jsonl"),
        "weechat-faq": faq,
    }


def _heading(chunk) -> str:
    return " ".join(chunk.heading.split())


def _file_and_heading(chunk) -> str:
    name = Path(chunk.source).name.split(".")[0].replace("_", " ")
    return " > ".join(p for p in (name, _heading(chunk)) if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/work/titles"))
    args = parser.parse_args()
    settings = load_settings(index_dir=args.work / "index")
    documents(args.work / "docs")
    if not (args.work / "index").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rag",
                "ingest",
                str(args.work / "docs"),
                "--index",
                str(args.work / "index"),
            ],
            check=True,
        )
    embedder = load_embedder(settings)
    db = sqlite3.connect(f"file:{args.work / 'index' / 'catalog.sqlite'}?mode=ro", uri=True)
    ids = [cid for (cid,) in db.execute("SELECT chunk_id FROM chunks ORDER BY rowid")]
    db.close()
    with open_index(args.work / "index", embedder_name=embedder.name) as index:
        by_id = {c.id: c for c in index.get_chunks(ids)}
    chunks = [by_id[i] for i in ids]
    print(f"{len(chunks)} chunks, {sum(bool(c.heading) for c in chunks)} with a heading; {embedder.name}")
    if not uses_titles(embedder):
        raise SystemExit(f"{embedder.name}'s document prompt has no title field: nothing to measure")

    # Every variant embedded here through the embedder's own ``embed_documents`` (titles or not),
    # whatever the index was built with; each cached beside the index.
    dense_variants = {}
    for name, title in (
        ("no title", None),
        ("title=heading", _heading),
        ("title=file+heading", _file_and_heading),
    ):
        cache = args.work / f"vectors-{name.replace(' ', '-')}-{embedder.name}.npy"
        if not cache.is_file():
            t0 = time.perf_counter()
            titles = [title(c) for c in chunks] if title else None
            np.save(cache, embedder.embed_documents([c.text for c in chunks], titles=titles))
            print(f"{name}: {len(chunks)} chunks embedded in {time.perf_counter() - t0:.0f} s", flush=True)
        dense_variants[name] = np.load(cache)
    lexical_variants = {  # the heading path a field of each weight (0: the text only)
        _lexical_name(w): LexicalIndex.build(
            ((row, _heading(c), c.text) for row, c in enumerate(chunks, start=1)), version=0, heading_weight=w
        )
        for w in HEADING_WEIGHTS
    }
    base = ("no title", "text only")  # docqa before titles
    runs = [base, ("title=heading", "text only"), ("title=file+heading", "text only")]
    runs += [("no title", _lexical_name(1.0)), ("no title", _lexical_name(2.0))]
    runs += [("title=heading", _lexical_name(w)) for w in HEADING_WEIGHTS if w]  # docqa: HEADING_WEIGHT
    by_question: dict[str, list] = {}  # run -> [(product, rank)] over every set

    out: dict = {
        "embedder": embedder.name,
        "chunks": len(chunks),
        "dense_weight": dense_weight_for(settings.dense_weight, embedder.name),
        "same_language_bonus": settings.same_language_bonus,
        "heading_weight_shipped": HEADING_WEIGHT,
        "sets": {},
    }
    for set_name, questions in question_sets().items():
        q_vectors = embedder.embed_queries([q["question"] for q in questions])
        per_run = {}
        for dense_name, lexical_name in runs:
            vectors, lexical = dense_variants[dense_name], lexical_variants[lexical_name]
            ranks = {"en": [], "es": []}
            for q, qv in zip(questions, q_vectors, strict=True):
                scores = vectors @ qv
                top = np.argsort(-scores)[:CANDIDATES]
                dense = [(ids[i], float(scores[i])) for i in top]
                lex = [(ids[r - 1], s) for r, s in lexical.search(lexical_query(q["question"]), CANDIDATES)]
                q_lang = detect_language(q["question"])
                fused = fuse(dense, lex, dense_weight_for(settings.dense_weight, embedder.name))
                if settings.same_language_bonus and q_lang != "und":
                    bonus = settings.same_language_bonus
                    fused = sorted(
                        ((c, s + (bonus if by_id[c].lang == q_lang else 0.0)) for c, s in fused),
                        key=lambda x: -x[1],
                    )
                passages = [_passage(by_id[c], s, r) for r, (c, s) in enumerate(fused[:10], start=1)]
                hits = relevance([parse_gold(q["gold"])], passages)
                rank = next((r for r, h in enumerate(hits, start=1) if h), None)
                ranks[q["lang"]].append(rank)
                by_question.setdefault(f"{dense_name} | {lexical_name}", []).append(
                    (_product(set_name, q), rank)
                )
            per_run[f"{dense_name} | {lexical_name}"] = {
                lang: _metrics(r) | {"n": len(r)} for lang, r in ranks.items() if r
            }
        out["sets"][set_name] = per_run
        print(f"\n{set_name} ({len(questions)} questions): nDCG@10 / hit@1 per language")
        for run, langs in per_run.items():
            cells = "  ".join(
                f"{lang} {m['ndcg@10']:.3f} / {m['r@1']:.2f} (n={m['n']})" for lang, m in langs.items()
            )
            print(f"  {run:45} {cells}")
    out["heading_weight_held_out"] = _held_out_weight(by_question)
    print("\nheading weight chosen on one product, scored on the other (nDCG@10, title=heading):")
    for product, row in out["heading_weight_held_out"].items():
        print(f"  {product}: {row}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"title_ablation-{embedder.name}.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"\nwrote {path}")


def _held_out_weight(by_question: dict[str, list]) -> dict[str, dict]:
    """For each product: the heading weight that did best on the other product's questions (ties
    to the nearer of 1), and the product's own nDCG@10 at that weight, at 1 and at 0."""
    weights = [w for w in HEADING_WEIGHTS if w]

    def ndcg(weight: float, product: str, same: bool) -> float:
        rows = (
            by_question[f"title=heading | {_lexical_name(weight)}"]
            if weight
            else by_question["title=heading | text only"]
        )
        return _metrics([r for p, r in rows if (p == product) == same])["ndcg@10"]

    out = {}
    for product in ("eyes17", "weechat"):
        chosen = max(weights, key=lambda w: (round(ndcg(w, product, False), 6), -abs(w - 1)))
        out[product] = {
            "chosen_on_the_other": chosen,
            "ndcg@10 at chosen": round(ndcg(chosen, product, True), 4),
            "at 1": round(ndcg(1.0, product, True), 4),
            "at 0": round(ndcg(0.0, product, True), 4),
            "by weight": {str(w): round(ndcg(w, product, True), 4) for w in [0.0, *weights]},
        }
    return out


def _passage(chunk, score: float, rank: int) -> Passage:
    return Passage(chunk.id, chunk.source, chunk.text, chunk.page, chunk.heading, chunk.lang, score, rank)


if __name__ == "__main__":
    main()
