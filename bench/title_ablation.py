"""Titles and headings in retrieval, each change alone: the embedder's title field, a lexical heading.

EmbeddingGemma's document prompt is ``"title: none | text: "``: docqa gave it no title; its model
card fills that field with the document's title. This script measures, against retrieval without
either (every chunk embedded with no title, BM25 on the chunk text; fused at ``dense_weight`` with
the same-language bonus, as the engine does), each change alone, then both (what docqa now ships:
``ingest.embed.title_of``, ``ingest.lexical.lexical_text``):

- ``title=heading``: every chunk embedded with its heading path in the title field
  (``"title: Install > On Linux | text: ..."``; "none" when it has none);
- ``title=file+heading``: the file's name (without folders and suffix) before the heading path;
- ``heading + text`` / ``heading x2 + text``: the heading path added once / twice before the
  chunk's text on the lexical side (a field with its own weight, here by repetition).

Documents (indexed once by ``docqa ingest`` at default settings): the sample manuals of
``corpus/`` (eyes17 PDF en/es: outline headings; weechat quickstart HTML en/es) and weechat's FAQ
(HTML en/es from ``../shared/manuals``: one heading per question). Questions, scored apart:
``corpus/questions.jsonl``'s answerable ones (gold page or heading), ``bench/data/
scanned_questions.jsonl`` (gold eyes17 page; here read from the text layer), and the dev set's
weechat FAQ questions (gold: their answer's text in the FAQ page). No value is fitted: every
variant is reported on every set, so none is chosen on the questions it is scored on.

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
from ingest.lexical import LexicalIndex
from ingest.records import Passage
from ingest.settings import load_settings
from ingest.store import open_index
from rag.evaluate.gold import parse_gold, relevance
from rag.retrieve import fuse, lexical_query

ROOT = Path(__file__).resolve().parents[1]
MANUALS = ROOT.parent / "shared" / "manuals"
RESULTS = Path(__file__).resolve().parent / "results"
CANDIDATES = 40
TITLE_SLOT = "title: none"


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
    lexical_variants = {  # the heading n times before the text (n = 1 is ingest.lexical.lexical_text)
        ("text only", "heading + text", "heading x2 + text")[n]: LexicalIndex.build(
            ((row, " ".join([_heading(c)] * n + [c.text])) for row, c in enumerate(chunks, start=1)),
            version=0,
        )
        for n in (0, 1, 2)
    }
    base = ("no title", "text only")  # docqa before titles
    runs = [base, ("title=heading", "text only"), ("title=file+heading", "text only")]
    runs += [("no title", "heading + text"), ("no title", "heading x2 + text")]
    runs += [("title=heading", "heading + text")]  # docqa now

    out: dict = {
        "embedder": embedder.name,
        "chunks": len(chunks),
        "dense_weight": settings.dense_weight,
        "same_language_bonus": settings.same_language_bonus,
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
                fused = fuse(dense, lex, settings.dense_weight)
                if settings.same_language_bonus and q_lang != "und":
                    bonus = settings.same_language_bonus
                    fused = sorted(
                        ((c, s + (bonus if by_id[c].lang == q_lang else 0.0)) for c, s in fused),
                        key=lambda x: -x[1],
                    )
                passages = [_passage(by_id[c], s, r) for r, (c, s) in enumerate(fused[:10], start=1)]
                hits = relevance([parse_gold(q["gold"])], passages)
                ranks[q["lang"]].append(next((r for r, h in enumerate(hits, start=1) if h), None))
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
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"title_ablation-{embedder.name}.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"\nwrote {path}")


def _passage(chunk, score: float, rank: int) -> Passage:
    return Passage(chunk.id, chunk.source, chunk.text, chunk.page, chunk.heading, chunk.lang, score, rank)


if __name__ == "__main__":
    main()
