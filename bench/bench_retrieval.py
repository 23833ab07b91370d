"""Retrieval latency at 10k and 100k chunks, FAISS flat vs HNSW, and the growth to 1M.

Synthetic but shaped like a real index: 768-dim normalised vectors in clusters (as embeddings of
manual chunks are), ~150-word texts drawn from a Zipf vocabulary (so common words behave like
stopwords in FTS5), written through the real ``ingest.store``. Queries are a stored vector plus
noise and 8 words. Timed: ``Index.search_dense`` (k=4k candidates), ``Index.search_lexical``, and the
whole ``rag.retrieve.retrieve`` (both searches + fusion + fetching the chunks), query embedding
excluded (measured separately with ``--embedder``). Then FAISS alone: exact ``IndexFlatIP`` vs
``IndexHNSWFlat`` (M=32) in ``IndexIDMap2`` at several efSearch, recall@10 against exact, and one
exact search over 1M vectors.

    python bench/bench_retrieval.py                       # 10k and 100k, HNSW, 1M flat
    python bench/bench_retrieval.py --sizes 10000 --no-1m --embedder embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from ingest.catalog import FileUpdate
from ingest.records import Chunk
from ingest.store import open_index
from rag.retrieve import retrieve

DIM = 768
RESULTS = Path(__file__).resolve().parent / "results"


def _vectors(n: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = centres[rng.integers(0, clusters, n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _texts(n: int, rng: np.random.Generator, vocabulary: int = 20000, words: int = 150) -> list[str]:
    vocab = np.array([f"w{i}" for i in range(vocabulary)])
    weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.1
    draws = rng.choice(vocabulary, size=(n, words), p=weights / weights.sum())
    return [" ".join(vocab[row]) for row in draws]


def _build(folder: Path, vectors: np.ndarray, texts: list[str], per_file: int = 1000) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with open_index(folder, embedder_name="synthetic", create=True, dim=DIM) as index:
        for f in range(0, len(texts), per_file):
            chunks = tuple(
                Chunk(f"{f}-{i}", f"doc{f // per_file}.txt", t, 0, len(t), 0, i, page=i // 3 + 1)
                for i, t in enumerate(texts[f : f + per_file])
            )
            index.apply(
                [
                    FileUpdate(
                        str(folder), f"doc{f}.txt", f"{f:064x}", 1, 0.0, chunks, vectors[f : f + per_file]
                    )
                ]
            )
        index.commit()


class _Given:
    """An "embedder" that returns the query vector the benchmark already chose."""

    name, dim, max_tokens = "synthetic", DIM, 512

    def __init__(self) -> None:
        self.vector = np.zeros(DIM, dtype=np.float32)

    def embed_queries(self, texts):
        return self.vector[None, :]


def _ms(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
    }


def _queries(vectors: np.ndarray, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    picks = vectors[rng.integers(0, len(vectors), n)] + 0.05 * rng.standard_normal((n, DIM)).astype(
        np.float32
    )
    picks /= np.linalg.norm(picks, axis=1, keepdims=True)
    return picks, _texts(n, rng, words=8)


def bench_store(n: int, rng: np.random.Generator, queries: int, k: int) -> dict:
    vectors, texts = _vectors(n, rng), _texts(n, rng)
    folder = Path(f"/tmp/docqa-bench-retrieval-{n}")
    t0 = time.perf_counter()
    _build(folder, vectors, texts)
    built = time.perf_counter() - t0
    qv, qt = _queries(vectors, rng, queries)
    embedder = _Given()
    timing: dict[str, list[float]] = {"dense": [], "lexical": [], "retrieve": []}
    with open_index(folder) as index:
        for vector, text in zip(qv, qt, strict=True):
            t = time.perf_counter()
            index.search_dense(vector, 4 * k)
            timing["dense"].append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search_lexical(text, 4 * k)
            timing["lexical"].append(time.perf_counter() - t)
            embedder.vector = vector
            t = time.perf_counter()
            retrieve(text, index, embedder, k=k, dense_weight=0.7)
            timing["retrieve"].append(time.perf_counter() - t)
    shutil.rmtree(folder, ignore_errors=True)
    return {"chunks": n, "build_s": built, **{name: _ms(ts) for name, ts in timing.items()}}


def bench_faiss(n: int, rng: np.random.Generator, queries: int, ef_values=(16, 64, 128)) -> dict:
    import faiss

    vectors = _vectors(n, rng)
    ids = np.arange(n, dtype=np.int64)
    qv, _ = _queries(vectors, rng, queries)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(vectors, ids)
    times, exact = [], []
    for q in qv:
        t = time.perf_counter()
        _, found = flat.search(q[None, :], 10)
        times.append(time.perf_counter() - t)
        exact.append(set(found[0]))
    out = {"chunks": n, "flat": _ms(times)}
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    index = faiss.IndexIDMap2(hnsw)
    index.add_with_ids(vectors, ids)
    out["hnsw_build_s"] = time.perf_counter() - t0
    for ef in ef_values:
        hnsw.hnsw.efSearch = ef
        times, recall = [], []
        for q, truth in zip(qv, exact, strict=True):
            t = time.perf_counter()
            _, found = index.search(q[None, :], 10)
            times.append(time.perf_counter() - t)
            recall.append(len(truth & set(found[0])) / 10)
        out[f"hnsw_ef{ef}"] = {**_ms(times), "recall@10": float(np.mean(recall))}
    return out


def bench_flat_1m(rng: np.random.Generator, queries: int = 20, n: int = 1_000_000) -> dict:
    import faiss

    index = faiss.IndexFlatIP(DIM)
    for _ in range(0, n, 100_000):
        index.add(_vectors(100_000, rng))
    qv = _vectors(queries, rng)
    times = []
    for q in qv:
        t = time.perf_counter()
        index.search(q[None, :], 20)
        times.append(time.perf_counter() - t)
    return {"chunks": n, "flat": _ms(times), "memory_gb": n * DIM * 4 / 1e9}


def bench_embedding(name: str, queries: int = 10) -> dict:
    from ingest.embed import load_embedder
    from ingest.settings import load_settings

    embedder = load_embedder(name, load_settings().models_dir)
    questions = ["How do I measure a voltage on A1?", "¿Qué rango de voltaje admiten las entradas?"] * queries
    embedder.embed_queries(questions[:1])
    times = []
    for q in questions[:queries]:
        t = time.perf_counter()
        embedder.embed_queries([q])
        times.append(time.perf_counter() - t)
    return {"embedder": name, **_ms(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--no-1m", action="store_true", help="skip the 1M exact search (3 GB of RAM)")
    parser.add_argument("--embedder", default=None, help="also time query embedding with this model")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict = {"dim": DIM, "k": args.k, "candidates": 4 * args.k, "store": [], "faiss": []}
    print(f"{'chunks':>8} | {'dense p50/p95 ms':>17} | {'lexical p50/p95':>16} | {'retrieve p50/p95':>16}")
    for n in args.sizes:
        r = bench_store(n, rng, args.queries, args.k)
        report["store"].append(r)
        cells = " | ".join(
            f"{r[x]['p50_ms']:7.1f} /{r[x]['p95_ms']:7.1f}" for x in ("dense", "lexical", "retrieve")
        )
        print(f"{n:8d} | {cells}   (built in {r['build_s']:.0f} s)", flush=True)
    print(f"\n{'chunks':>8} | {'index':14} | {'p50 ms':>7} | {'p95 ms':>7} | recall@10")
    for n in args.sizes:
        r = bench_faiss(n, rng, args.queries)
        report["faiss"].append(r)
        print(f"{n:8d} | {'flat':14} | {r['flat']['p50_ms']:7.2f} | {r['flat']['p95_ms']:7.2f} | 1.000")
        for key, v in r.items():
            if key.startswith("hnsw_ef"):
                print(f"{n:8d} | {key:14} | {v['p50_ms']:7.2f} | {v['p95_ms']:7.2f} | {v['recall@10']:.3f}")
        print(f"{n:8d} | HNSW build {r['hnsw_build_s']:.1f} s", flush=True)
    if not args.no_1m:
        r = bench_flat_1m(rng)
        report["flat_1m"] = r
        print(f"\n1M exact flat search: p50 {r['flat']['p50_ms']:.0f} ms, p95 {r['flat']['p95_ms']:.0f} ms")
    if args.embedder:
        r = bench_embedding(args.embedder)
        report["query_embedding"] = r
        print(f"\nquery embedding ({r['embedder']}): p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_retrieval.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
