"""Tune retrieval on the dev FAQ set: fusion weight per language, and the refusal threshold.

Documents are the 453 gold answers (each cut into <= 1000-character pieces, a document scoring as
its best piece), optionally plus N manual pieces of the dev corpus as distractors. Dense scores
come from the real embedder (vectors cached as .npy, so a rerun costs seconds); lexical scores from
an in-memory SQLite FTS5 table built like the index's (unicode61, diacritics folded, bm25) queried
with ``rag.retrieve.lexical_query`` (stopwords dropped); fusion is ``rag.retrieve.fuse`` itself. Reports nDCG@10, R@1 and hit@5 per language for each weight and
normalisation, then the refusal calibration: each question's best cosine against its own
product's documents (answerable) and against each other product's (unanswerable).

    python bench/tune_fusion.py --embedder embeddinggemma-300m
    python bench/tune_fusion.py --embedder all-minilm-l6-v2 --distractors 2000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sqlite3
import time
from pathlib import Path

import numpy as np

from ingest.embedders import load_embedder
from ingest.settings import load_settings
from rag.retrieve import fuse, lexical_query

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev"
RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]
CANDIDATES = 40  # 4 x k for nDCG@10


def _pieces(text: str, size: int = 1000) -> list[str]:
    """``text`` cut at whitespace into pieces of at most ``size`` characters."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > 0 else end
        out.append(text[start:end].strip())
        start = end
    return [p for p in out if p]


def _corpus(
    questions: list[dict], distractors: int, seed: int = 0
) -> tuple[list[str], list[str], list[str], int]:
    """(texts, doc ids, sources, number of answer pieces): every answer, then sampled manual pieces."""
    texts, docs, sources = [], [], []
    for q in questions:
        for piece in _pieces(q["answer"]):
            texts.append(piece)
            docs.append(q["id"])
            sources.append(q["source"])
    answers = len(texts)
    if distractors:
        manual = []
        for folder in sorted((DEV / "corpus").iterdir()):
            source = folder.name.rsplit("-", 1)[0]
            for file in sorted(folder.glob("*.txt")):
                for i, piece in enumerate(_pieces(file.read_text(encoding="utf-8"))):
                    manual.append((piece, f"{file.name}#{i}", source))
        for piece, doc, source in random.Random(seed).sample(manual, min(distractors, len(manual))):
            texts.append(piece)
            docs.append(doc)
            sources.append(source)
    return texts, docs, sources, answers


def _cached(embed, texts: list[str], path: Path, batch: int = 64) -> np.ndarray:
    """Vectors for ``texts``, saved to ``path`` batch by batch so an interrupted run resumes."""
    done = np.load(path) if path.exists() else np.zeros((0, 0), dtype=np.float32)
    rows = [done] if len(done) else []
    start, t0 = len(done), time.perf_counter()
    for i in range(start, len(texts), batch):
        rows.append(embed(texts[i : i + batch]))
        np.save(path, np.concatenate(rows))
        rate = (i + batch - start) / (time.perf_counter() - t0)
        print(f"  {path.name}: {min(i + batch, len(texts))}/{len(texts)} ({rate:.1f}/s)", flush=True)
    return np.load(path) if rows else done


def _fts(texts: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", enumerate(texts))
    return db


def _lexical(db: sqlite3.Connection, question: str, n: int) -> list[tuple[str, float]]:
    terms = [f'"{w}"' for w in re.findall(r"[^\W_]+", lexical_query(question).lower())]
    if not terms:
        return []
    rows = db.execute(
        "SELECT rowid, -bm25(t) FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT ?", (" OR ".join(terms), n)
    ).fetchall()
    return [(str(r), float(s)) for r, s in rows]


def _rank_of(gold: str, ranked: list[tuple[str, float]], docs: list[str]) -> int | None:
    """1-based rank of ``gold`` among documents (a document ranks at its best piece)."""
    seen: list[str] = []
    for piece, _ in ranked:
        doc = docs[int(piece)]
        if doc not in seen:
            seen.append(doc)
            if doc == gold:
                return len(seen)
    return None


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "ndcg@10": sum(1 / math.log2(r + 1) for r in ranks if r and r <= 10) / n,
        "r@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(bool(r and r <= 5) for r in ranks) / n,
    }


def _threshold_table(pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """Best-F1 threshold (refusal = positive class) and the highest keeping 95% answerable."""
    best = (0.0, 0.0)
    for t in np.unique(np.concatenate([pos, neg])):
        refused_neg, refused_pos = (neg < t).sum(), (pos < t).sum()
        precision = refused_neg / max(1, refused_neg + refused_pos)
        recall = refused_neg / len(neg)
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        best = max(best, (float(f1), float(t)))
    keep95 = float(np.quantile(pos, 0.05))
    grid = {
        f"{t:.2f}": {
            "answerable_kept": float((pos >= t).mean()),
            "unanswerable_refused": float((neg < t).mean()),
        }
        for t in np.arange(0.20, 0.61, 0.05)
    }
    return {
        "f1_threshold": best[1],
        "f1": best[0],
        "answerable_kept_at_f1": float((pos >= best[1]).mean()),
        "unanswerable_refused_at_f1": float((neg < best[1]).mean()),
        "keep95_threshold": keep95,
        "unanswerable_refused_at_keep95": float((neg < keep95).mean()),
        "answerable_median": float(np.median(pos)),
        "unanswerable_median": float(np.median(neg)),
        "grid": grid,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="embeddinggemma-300m")
    parser.add_argument("--distractors", type=int, default=0, help="manual pieces added to the answers")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/docqa-tune"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    questions = [json.loads(line) for line in (DEV / "questions.jsonl").open(encoding="utf-8")]
    texts, docs, sources, answers = _corpus(questions, args.distractors)
    embedder = load_embedder(load_settings(embedder=args.embedder))
    print(f"{len(questions)} questions, {len(texts)} pieces; embedding with {embedder.name}")
    parts = []
    for part in (texts[:answers], texts[answers:]):  # cached apart: distractors reuse the answers'
        if part:
            key = hashlib.sha256("\n\0".join(part).encode()).hexdigest()[:12]
            parts.append(
                _cached(embedder.embed_documents, part, args.cache / f"{embedder.name}-docs-{key}.npy")
            )
    doc_vecs = np.concatenate(parts)
    q_vecs = _cached(
        embedder.embed_queries,
        [q["question"] for q in questions],
        args.cache / f"{embedder.name}-questions.npy",
    )
    sims = q_vecs @ doc_vecs.T
    db = _fts(texts)
    dense_lists, lexical_lists = [], []
    for i, q in enumerate(questions):
        top = np.argsort(-sims[i])[:CANDIDATES]
        dense_lists.append([(str(j), float(sims[i, j])) for j in top])
        lexical_lists.append(_lexical(db, q["question"], CANDIDATES))

    report: dict = {"embedder": embedder.name, "pieces": len(texts), "distractors": args.distractors}
    print(f"\n{'method':7} {'w':>4} | " + " | ".join(f"{lang}: nDCG@10  R@1  hit@5" for lang in ("en", "es")))
    for method in ("minmax", "zscore"):
        for w in WEIGHTS:
            row = {}
            for lang in ("en", "es"):
                ranks = [
                    _rank_of(q["id"], fuse(dense_lists[i], lexical_lists[i], w, method=method), docs)
                    for i, q in enumerate(questions)
                    if q["lang"] == lang
                ]
                row[lang] = _metrics(ranks)
            report.setdefault("fusion", []).append({"method": method, "dense_weight": w, **row})
            cells = " | ".join(
                f"    {m['ndcg@10']:.3f}  {m['r@1']:.3f}  {m['hit@5']:.3f}" for m in row.values()
            )
            print(f"{method:7} {w:4.1f} | {cells}")

    from ingest.lang import detect_language

    piece_lang = [detect_language(t) for t in texts]
    print("\nsame-language bonus (minmax): nDCG@10 en / es")
    for w in (0.6, 0.7, 0.9):
        for bonus in (0.0, 0.1, 0.2):
            row = {}
            for lang in ("en", "es"):
                ranks = []
                for i, q in enumerate(questions):
                    if q["lang"] != lang:
                        continue
                    fused = fuse(dense_lists[i], lexical_lists[i], w)
                    fused = sorted(
                        ((c, s + (bonus if piece_lang[int(c)] == lang else 0.0)) for c, s in fused),
                        key=lambda x: -x[1],
                    )
                    ranks.append(_rank_of(q["id"], fused, docs))
                row[lang] = _metrics(ranks)
            report.setdefault("lang_bonus", []).append({"dense_weight": w, "bonus": bonus, **row})
            print(f"  w={w} bonus={bonus}: {row['en']['ndcg@10']:.3f} / {row['es']['ndcg@10']:.3f}")

    product_of = np.array(sources)
    calibration = {}
    for lang in ("en", "es", "all"):
        pos, neg = [], []
        for i, q in enumerate(questions):
            if lang != "all" and q["lang"] != lang:
                continue
            for source in sorted(set(sources)):
                best = float(sims[i, product_of == source].max())
                (pos if source == q["source"] else neg).append(best)
        calibration[lang] = _threshold_table(np.array(pos), np.array(neg))
    report["refusal"] = calibration
    print("\nrefusal threshold on the best dense cosine (own product = answerable, others = not):")
    for lang, c in calibration.items():
        print(
            f"  {lang}: best F1 {c['f1']:.3f} at {c['f1_threshold']:.3f} (keeps {c['answerable_kept_at_f1']:.1%}"
            f" answerable, refuses {c['unanswerable_refused_at_f1']:.1%} unanswerable); 95% kept at "
            f"{c['keep95_threshold']:.3f} (refuses {c['unanswerable_refused_at_keep95']:.1%}); medians "
            f"{c['answerable_median']:.3f} / {c['unanswerable_median']:.3f}"
        )
    print("  threshold: answerable kept / unanswerable refused (all questions)")
    for t, g in calibration["all"]["grid"].items():
        print(f"    {t}: {g['answerable_kept']:.1%} / {g['unanswerable_refused']:.1%}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tune_fusion-{embedder.name}-d{args.distractors}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
