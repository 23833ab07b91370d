"""A linear reranker over the fused candidates, leave-one-product-out: do cheap features beyond
dense and BM25 move retrieval's first rank on unseen products?

Both headline targets of issue 10 are bounded by retrieval's rank 1 (one passage is shown), and
no reranker model can be had (``../shared/MODELS.md``). This asks whether features any query can
afford, computed on the top 20 of the shipped fusion (dense weight 0.9, same-language bonus 0.1),
rank the gold answer first more often than the fusion does:

- ``dense``, ``bm25``, ``same``: the fusion's own inputs (min-max dense and BM25, same language);
- ``cov`` / ``icov``: the share of the question's content words the chunk holds (plain, and IDF
  weighted with the index's document frequencies); ``big`` / ``bigc``: the share of its word
  pairs (all words, content words) found side by side; ``num``: its numbers found;
- ``gap``: the chunk's cosine minus the best cosine (raw, not min-max);
- ``len``: log of the chunk's words; ``first``: the chunk opens its file.

A pairwise logistic regression (gold chunk against each other candidate) is trained
on four products' questions and scores the fifth. Index: ``eval_lopo.py build``'s ``index-all``
(every dev FAQ answer a document; the default embedder).

    python bench/rerank_features.py                      # every feature set below
    python bench/rerank_features.py --sets dense,bm25,same,first --out rerank_features-first.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lopo_data
from tune_fusion import RESULTS, _metrics

from ingest.embedders import load_embedder
from ingest.lang import detect_language
from ingest.settings import load_settings
from ingest.store import open_index
from rag.refusal_fit import L2, _logistic
from rag.retrieve import dense_weight_for, fuse, lexical_query
from rag.text import STOPWORDS, fold

CANDIDATES = 40  # each search's candidates, as retrieval_lopo.py
TOP = 20  # of the fused list, what the reranker reorders
FEATURES = ("dense", "bm25", "same", "cov", "icov", "big", "bigc", "num", "gap", "len", "first")
SETS = (
    "dense,bm25,same",
    "dense,bm25,same,gap",
    "dense,bm25,same,cov,icov",
    "dense,bm25,same,cov,icov,num",
    "dense,bm25,same,cov,icov,big,bigc,num,gap",
    "dense,bm25,same,len",
    "dense,bm25,same,first",
    ",".join(FEATURES),
)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]{2,}")


def _words(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def _features(question, lang, dense, lexical, chunks, words, idf, weight, bonus):
    """(candidate ids, feature matrix in ``FEATURES`` order, the shipped fused score) of one question."""
    fused = fuse(dense, lexical, weight)
    d, lx = dict(dense), dict(lexical)
    dmax, dmin = max(d.values(), default=0.0), min(d.values(), default=0.0)
    lmax, lmin = max(lx.values(), default=1.0), min(lx.values(), default=0.0)
    q = _words(question)
    content = [w for w in q if w not in STOPWORDS]
    terms = list(dict.fromkeys(content))
    pairs, content_pairs = set(pairwise(q)), set(pairwise(content))
    numbers = [w for w in terms if w[0].isdigit()]
    total_idf = sum(idf(w) for w in terms) or 1.0
    ids = [cid for cid, _ in fused[:TOP]]
    rows = []
    for cid in ids:
        chunk, held = chunks[cid], set(words[cid])
        held_pairs = set(pairwise(words[cid]))
        rows.append(
            [
                (d[cid] - dmin) / (dmax - dmin) if cid in d and dmax > dmin else 0.0,
                (lx[cid] - lmin) / (lmax - lmin) if cid in lx and lmax > lmin else 0.0,
                1.0 if lang != "und" and chunk.lang == lang else 0.0,
                sum(w in held for w in terms) / max(1, len(terms)),
                sum(idf(w) for w in terms if w in held) / total_idf,
                len(pairs & held_pairs) / max(1, len(pairs)),
                len(content_pairs & held_pairs) / max(1, len(content_pairs)),
                sum(w in held for w in numbers) / len(numbers) if numbers else 0.0,
                d[cid] - dmax if cid in d else dmin - dmax - 0.02,
                math.log1p(len(words[cid])),
                1.0 if chunk.position == 0 else 0.0,
            ]
        )
    x = np.asarray(rows, dtype=np.float64)
    return ids, x, weight * x[:, 0] + (1 - weight) * x[:, 1] + bonus * x[:, 2]


def _train(examples, keep: list[int]) -> np.ndarray:
    """Pairwise logistic regression: gold minus each other candidate labelled 1, the reverse 0
    (``rag.refusal_fit``'s L2-penalised Newton fit; the symmetry leaves its intercept at 0)."""
    diffs = [
        x[gold][0, keep] - x[j, keep] for x, gold in examples if gold.any() for j in np.flatnonzero(~gold)
    ]
    z = np.asarray(diffs)
    scale = z.std(axis=0) + 1e-9
    z = z / scale
    weights, _ = _logistic(np.vstack([z, -z]), np.r_[np.ones(len(z)), np.zeros(len(z))], L2)
    return weights / scale


def _rank(ids, scores, gold_doc, doc_of) -> int | None:
    """1-based rank of the gold document (a document ranks at its best chunk)."""
    seen: list[str] = []
    for j in np.argsort(-scores, kind="stable"):
        doc = doc_of[ids[j]]
        if doc not in seen:
            seen.append(doc)
        if doc == gold_doc:
            return seen.index(doc) + 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/work/lopo/index-all"))
    parser.add_argument("--embed-backend", default=load_settings().embed_backend)
    parser.add_argument("--sets", nargs="*", default=list(SETS), help="feature sets, comma-separated")
    parser.add_argument("--bonus", type=float, default=load_settings().same_language_bonus)
    parser.add_argument("--out", default="rerank_features.json", help="file name under bench/results")
    args = parser.parse_args()
    questions = [q for q in lopo_data.questions() if q.kind == "answerable"]
    with open_index(args.index) as index:
        embedder = load_embedder(load_settings(index_dir=args.index, embed_backend=args.embed_backend))
        weight = dense_weight_for(load_settings().dense_weight, embedder.name)
        cached = args.index.parent / f"{args.index.name}-question-vectors.npy"  # retrieval_lopo.py's
        texts = [q.question for q in questions]
        if cached.is_file() and len(np.load(cached)) == len(texts):
            vectors = np.load(cached)
        else:
            vectors = np.asarray(embedder.embed_queries(texts), dtype=np.float32)
            np.save(cached, vectors)
        dense = [index.search_dense(v, CANDIDATES) for v in vectors]
        lexical = [index.search_lexical(lexical_query(t), CANDIDATES) for t in texts]
        chunks = {c.id: c for c in index.get_chunks(sorted({c for h in dense + lexical for c, _ in h}))}
        every_text = [row[0] for row in index._conn.execute("SELECT text FROM chunks")]
    df: Counter[str] = Counter()
    for text in every_text:
        df.update(set(_words(text)))
    n = len(every_text)

    def idf(word: str) -> float:  # BM25's
        return math.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))

    words = {cid: _words(c.text) for cid, c in chunks.items()}
    doc_of = {cid: Path(c.source).stem for cid, c in chunks.items()}
    data = []
    for i, q in enumerate(questions):
        lang = detect_language(q.question)
        ids, x, base = _features(
            q.question, lang, dense[i], lexical[i], chunks, words, idf, weight, args.bonus
        )
        gold = np.array([doc_of[c] == Path(q.gold).stem for c in ids])
        data.append((ids, x, gold, base))
    products = sorted({q.product for q in questions})
    shipped = [
        _rank(ids, base, Path(q.gold).stem, doc_of)
        for (ids, _, _, base), q in zip(data, questions, strict=True)
    ]
    report: dict = {"command": "python bench/rerank_features.py " + " ".join(sys.argv[1:]), "sets": {}}

    def summary(ranks) -> dict:
        out = {}
        for lang in ("en", "es"):
            mine = [r for r, q in zip(ranks, questions, strict=True) if q.lang == lang]
            out[lang] = {k: round(v, 4) for k, v in _metrics(mine).items() if k in ("ndcg@10", "r@1")}
            per: dict[str, list] = defaultdict(list)
            for r, q in zip(ranks, questions, strict=True):
                if q.lang == lang:
                    per[q.product].append(r)
            out[lang]["r@1 by product"] = {p: round(_metrics(v)["r@1"], 4) for p, v in sorted(per.items())}
        return out

    report["shipped fusion"] = summary(shipped)
    print(f"{'features':46} | en nDCG@10 R@1 | es nDCG@10 R@1")
    line = report["shipped fusion"]
    print(f"{'shipped fusion':46} | {line['en']['ndcg@10']:.3f} {line['en']['r@1']:.3f}"
          f" | {line['es']['ndcg@10']:.3f} {line['es']['r@1']:.3f}")  # fmt: skip
    for name in args.sets:
        keep = [FEATURES.index(f) for f in name.split(",")]
        ranks: list[int | None] = [None] * len(questions)
        weights = {}
        for held in products:
            train = [
                (x, gold) for (_, x, gold, _), q in zip(data, questions, strict=True) if q.product != held
            ]
            w = _train(train, keep)
            weights[held] = {FEATURES[k]: round(float(v), 3) for k, v in zip(keep, w, strict=True)}
            for i, q in enumerate(questions):
                if q.product == held:
                    ids, x, _, _ = data[i]
                    ranks[i] = _rank(ids, x[:, keep] @ w, Path(q.gold).stem, doc_of)
        report["sets"][name] = {**summary(ranks), "weights by held-out product": weights}
        line = report["sets"][name]
        print(f"{name:46} | {line['en']['ndcg@10']:.3f} {line['en']['r@1']:.3f}"
              f" | {line['es']['ndcg@10']:.3f} {line['es']['r@1']:.3f}")  # fmt: skip
        print("    R@1 by product, en:", line["en"]["r@1 by product"], "es:", line["es"]["r@1 by product"])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.out
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
