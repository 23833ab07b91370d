"""Retrieval latency at 10k and 100k chunks through the product's store, and the growth to 1M.

Synthetic but shaped like a real index: 768-dim normalised vectors in clusters (as embeddings of
manual chunks are), ~150-word texts drawn from a Zipf vocabulary (so common words behave like
stopwords in FTS5), written through the real ``ingest.store`` (which picks the FAISS index kind
for the size: exact flat below ``ingest.vectors.ANN_THRESHOLD``, IVF from it on). Queries are a
stored vector plus noise and 8 words. Timed: ``Index.search_dense`` (k=4k candidates),
``Index.search_lexical`` (and, for 50 queries, the previous lexical query: every word OR'ed),
and the whole ``rag.retrieve.retrieve`` (both searches + fusion + fetching the chunks), query
embedding excluded (measured separately with ``--embedder``); recall@10 of the store's dense
search against exact search. Then FAISS alone through ``ingest.vectors``: exact flat vs the
store's IVF (nprobe sweep, recall@10 against exact), also on unclustered vectors (IVF's worst
case), and at 1M vectors (built once; ~4 GB of RAM for both indexes).

    python bench/bench_retrieval.py                       # 10k and 100k store, FAISS 10k/100k/1M
    python bench/bench_retrieval.py --sizes 10000 --no-1m --embedder embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from ingest.catalog import FileUpdate
from ingest.layout import VECTORS
from ingest.lexical import fts_terms
from ingest.records import Chunk
from ingest.store import open_index
from ingest.vectors import FlatVectors, IVFVectors, nlist_for, nprobe_for
from rag.retrieve import lexical_query, retrieve

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
            index.apply([FileUpdate(str(folder), f"doc{f}.txt", f"{f:064x}", 1, 0.0, _chunks(texts, f, per_file),
                                    vectors[f : f + per_file])])  # fmt: skip
        index.commit()


def _chunks(texts: list[str], f: int, per_file: int) -> tuple[Chunk, ...]:
    return tuple(
        Chunk(_chunk_id(f + i, per_file), f"doc{f // per_file}.txt", t, 0, len(t), 0, i, page=i // 3 + 1)
        for i, t in enumerate(texts[f : f + per_file])
    )


def _chunk_id(row: int, per_file: int = 1000) -> str:
    return f"{row - row % per_file}-{row % per_file}"


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> list[set[int]]:
    """Row numbers of the exact top k (inner product), in query batches."""
    out = []
    for i in range(0, len(queries), 50):
        scores = queries[i : i + 50] @ vectors.T
        out += [set(row) for row in np.argpartition(-scores, k, axis=1)[:, :k]]
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def bench_store(n: int, rng: np.random.Generator, queries: int, k: int, old_lexical: int = 50) -> dict:
    vectors, texts = _vectors(n, rng), _texts(n, rng)
    folder = Path(f"/tmp/docqa-bench-retrieval-{n}")
    load = _load()
    t0 = time.perf_counter()
    _build(folder, vectors, texts)
    built = time.perf_counter() - t0
    qv, qt = _queries(vectors, rng, queries)
    exact = _exact(vectors, qv)
    embedder = _Given()
    timing: dict[str, list[float]] = {"dense": [], "lexical": [], "lexical_all_words": [], "retrieve": []}
    recall = []
    old_sql = (
        "SELECT c.chunk_id, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
        "WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?"
    )
    with open_index(folder) as index:
        manifest = index.manifest
        for i, (vector, text) in enumerate(zip(qv, qt, strict=True)):
            t = time.perf_counter()
            found = index.search_dense(vector, 4 * k)
            timing["dense"].append(time.perf_counter() - t)
            recall.append(len({cid for cid, _ in found[:10]} & {_chunk_id(j) for j in exact[i]}) / 10)
            words = lexical_query(text)
            t = time.perf_counter()
            index.search_lexical(words, 4 * k)
            timing["lexical"].append(time.perf_counter() - t)
            if i < old_lexical:  # the query before common words were left out
                match = " OR ".join(f'"{w}"' for w in fts_terms(words))
                t = time.perf_counter()
                index._conn.execute(old_sql, (match, 4 * k)).fetchall()
                timing["lexical_all_words"].append(time.perf_counter() - t)
            embedder.vector = vector
            t = time.perf_counter()
            retrieve(text, index, embedder, k=k, dense_weight=0.7)
            timing["retrieve"].append(time.perf_counter() - t)
    sizes = {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "chunks": n,
        "build_s": built,
        "vector_store": {
            key: manifest.get(key) for key in ("vector_store", "nlist", "nprobe", "trained_for")
        },
        "recall@10_vs_exact": float(np.mean(recall)),
        **{name: _ms(ts) for name, ts in timing.items() if ts},
        "faiss_file_mb": sizes.get(VECTORS, 0) / 1e6,
        "catalog_mb": sizes.get("catalog.sqlite", 0) / 1e6,
        "max_rss_mb": _rss_mb(),
        "loadavg_before": load,
        "loadavg_after": _load(),
    }


def _search(index: FlatVectors, queries: np.ndarray, truth: list[set[int]] | None, k: int = 20) -> dict:
    times, recall = [], []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        found = index.search(q, k)
        times.append(time.perf_counter() - t)
        if truth is not None:
            recall.append(len(truth[i] & {rowid for rowid, _ in found[:10]}) / 10)
    return {**_ms(times), **({"recall@10": float(np.mean(recall))} if truth is not None else {})}


def bench_faiss(n: int, rng: np.random.Generator, queries: int, clustered: bool = True) -> dict:
    """Exact flat vs the store's IVF (``ingest.vectors``) on ``n`` vectors, nprobe swept."""
    load = _load()
    vectors = _vectors(n, rng) if clustered else _unclustered(n, rng)
    ids = np.arange(n, dtype=np.int64)
    qv = _queries(vectors, rng, queries)[0] if clustered else _unclustered(queries, rng)
    exact = _exact(vectors, qv)
    flat = FlatVectors(DIM)
    flat.add(ids, vectors)
    out: dict = {
        "chunks": n,
        "vectors": "clustered" if clustered else "unclustered",
        "flat": _search(flat, qv, exact),
    }
    del flat
    ivf, timing = _ivf(vectors, rng)
    out.update(timing)
    chosen = ivf.params()["nprobe"]
    for nprobe in sorted({8, 16, 32, chosen, 2 * chosen}):
        ivf._index.nprobe = min(nprobe, ivf._index.nlist)
        out[f"ivf_nprobe{nprobe}"] = _search(ivf, qv, exact)
    out["loadavg"] = [load, _load()]
    return out


def _ivf(vectors: np.ndarray, rng: np.random.Generator) -> tuple[IVFVectors, dict]:
    """The IVF index the store builds for these vectors (sample, lists, nprobe), with its timings."""
    from ingest.vectors import TRAIN_POINTS_PER_LIST

    n = len(vectors)
    t0 = time.perf_counter()
    sample = vectors[np.sort(rng.choice(n, min(n, TRAIN_POINTS_PER_LIST * nlist_for(n)), replace=False))]
    ivf = IVFVectors.train(DIM, sample, n)
    trained = time.perf_counter() - t0
    for i in range(0, n, 100_000):
        ivf.add(np.arange(i, min(n, i + 100_000)), vectors[i : i + 100_000])
    timing = {"ivf_train_s": trained, "ivf_build_s": time.perf_counter() - t0}
    return ivf, {**timing, "nlist": nlist_for(n), "nprobe": nprobe_for(nlist_for(n))}


def _unclustered(n: int, rng: np.random.Generator) -> np.ndarray:
    out = rng.standard_normal((n, DIM)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def bench_1m(rng: np.random.Generator, queries: int = 100, n: int = 1_000_000) -> dict:
    """FAISS level at 1M: exact flat vs the store's IVF, recall@10, build time and memory."""
    load = _load()
    vectors = np.empty((n, DIM), dtype=np.float32)
    for i in range(0, n, 100_000):
        vectors[i : i + 100_000] = _vectors(100_000, np.random.default_rng(i))
    qv = _queries(vectors, rng, queries)[0]
    exact = _exact(vectors, qv)
    flat = FlatVectors(DIM)
    t0 = time.perf_counter()
    flat.add(np.arange(n), vectors)
    flat_build = time.perf_counter() - t0
    out = {
        "chunks": n,
        "flat": {**_search(flat, qv, exact), "build_s": flat_build, "memory_gb": n * DIM * 4 / 1e9},
    }
    del flat
    ivf, timing = _ivf(vectors, rng)
    rss = _rss_mb()
    out["ivf"] = {
        **timing,
        **_search(ivf, qv, exact),
        "max_rss_mb": rss,
        "memory_gb": n * (DIM * 4 + 8) / 1e9,
    }
    out["loadavg"] = [load, _load()]
    return out


def bench_embedding(name: str, queries: int = 10) -> dict:
    from ingest.embedders import load_embedder
    from ingest.settings import load_settings

    embedder = load_embedder(load_settings(embedder=name))
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
    parser.add_argument("--no-store", action="store_true", help="FAISS level only")
    parser.add_argument("--no-1m", action="store_true", help="skip the 1M FAISS part (~4 GB of RAM, minutes)")
    parser.add_argument("--no-faiss", action="store_true", help="skip the FAISS-level part (and 1M)")
    parser.add_argument("--embedder", default=None, help="also time query embedding with this model")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_retrieval.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict = {
        "dim": DIM,
        "k": args.k,
        "candidates": 4 * args.k,
        "cpus": os.cpu_count(),
        "store": [],
        "faiss": [],
    }
    if not args.no_store:
        print(
            f"{'chunks':>8} | {'dense p50/p95 ms':>17} | {'lexical p50/p95':>16} | {'retrieve p50/p95':>16} | recall@10"
        )
    for n in [] if args.no_store else args.sizes:
        r = bench_store(n, rng, args.queries, args.k)
        report["store"].append(r)
        cells = " | ".join(
            f"{r[x]['p50_ms']:7.1f} /{r[x]['p95_ms']:7.1f}" for x in ("dense", "lexical", "retrieve")
        )
        print(f"{n:8d} | {cells} | {r['recall@10_vs_exact']:.3f}   {r['vector_store']}, built in "
              f"{r['build_s']:.0f} s, all-words lexical p50 {r['lexical_all_words']['p50_ms']:.0f} ms, "
              f"load {r['loadavg_before']}", flush=True)  # fmt: skip
    print(f"\n{'chunks':>8} | {'index':16} | {'p50 ms':>7} | {'p95 ms':>7} | recall@10")
    faiss_runs = [(n, True) for n in args.sizes] + [(max(args.sizes), False)]
    for n, clustered in [] if args.no_faiss else faiss_runs:
        r = bench_faiss(n, rng, min(args.queries, 100), clustered)
        report["faiss"].append(r)
        for key, v in r.items():
            if key == "flat" or key.startswith("ivf_nprobe"):
                print(f"{n:8d} | {key:16} | {v['p50_ms']:7.2f} | {v['p95_ms']:7.2f} | {v['recall@10']:.3f}")
        print(f"{n:8d} | {r['vectors']}, IVF nlist {r['nlist']} (nprobe {r['nprobe']}) built in "
              f"{r['ivf_build_s']:.1f} s, load {r['loadavg']}", flush=True)  # fmt: skip
    if not (args.no_1m or args.no_faiss):
        r = bench_1m(rng)
        report["faiss_1m"] = r
        print(f"\n1M flat: p50 {r['flat']['p50_ms']:.0f} ms, p95 {r['flat']['p95_ms']:.0f} ms; IVF nlist "
              f"{r['ivf']['nlist']} nprobe {r['ivf']['nprobe']}: p50 {r['ivf']['p50_ms']:.1f} ms, p95 "
              f"{r['ivf']['p95_ms']:.1f} ms, recall@10 {r['ivf']['recall@10']:.3f}, built in "
              f"{r['ivf']['ivf_build_s']:.0f} s, load {r['loadavg']}")  # fmt: skip
    if args.embedder:
        r = bench_embedding(args.embedder)
        report["query_embedding"] = r
        print(f"\nquery embedding ({r['embedder']}): p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
