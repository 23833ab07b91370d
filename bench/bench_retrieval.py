"""Retrieval latency through the product's store at 100k and 1M chunks, in one run.

Each store is written through the real ``ingest.store`` (one 1,000-chunk file per transaction, then
``commit``, which picks the FAISS index kind for the size and saves the lexical index): 768-dim
normalised vectors in clusters (as embeddings of manual chunks are), and ~150-word chunk texts made
of three runs of consecutive real sentences from the dev-set manuals (English and Spanish), so word
frequencies are a manual's. Stores of ``--cache-from`` chunks or more are built once and kept in
``--cache-dir`` (a stamp says which generator made them). Queries: a stored vector plus noise and
the real FAQ questions through ``rag.retrieve.lexical_query``. Timed per question: the store's
dense search, its lexical search, fusion + fetching the passages and their lead-ins, the whole
``rag.retrieve.retrieve`` (query embedding excluded; ``--embedder`` times it). Also: recall@10 of
dense search against exact, an nprobe sweep on the store's own IVF index, the lexical top 10
against FTS5's ``bm25()`` over every word (the engine before, and the peer, timed) and against
rank-bm25 (up to ``--rank-bm25-up-to``), build time, peak RSS, disk and load average.
``--lexical-quality``: dev-set nDCG@10 of lexical search (no embedder needed); ``--real-ivf``: IVF
recall on real embeddings; ``--real-index``: the store's IVF built and calibrated on an existing
index's real vectors, the real questions' recall at the calibrated count; ``--faiss``: FAISS alone,
flat vs IVF, on clustered and random vectors.

    python bench/bench_retrieval.py --sizes 100000 1000000 --reference-queries 30 --lexical-quality
    python bench/bench_retrieval.py --sizes --real-ivf all-minilm-l6-v2 --real-pieces 3000
    python bench/bench_retrieval.py --sizes --real-index /work/full/index --out results/bench_retrieval-real-index.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from ingest.catalog import FileUpdate
from ingest.lexical import LEXICAL, fts_terms
from ingest.records import Chunk
from ingest.store import open_index
from ingest.vectors import TRAIN_POINTS_PER_LIST, FlatVectors, IVFVectors, nlist_for, nprobe_for
from rag.retrieve import fuse, lexical_query, retrieve

DIM = 768
RESULTS = Path(__file__).resolve().parent / "results"


def _vectors(n: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = centres[rng.integers(0, clusters, n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


CORPUS = Path("/work/shared/eval/faq-dev")  # real manual pages (English and Spanish) and FAQ questions


def _sentences(corpus: Path = CORPUS) -> list[str]:
    """The sentences of the real manual pages (3-80 words each), in corpus order."""
    out = []
    for path in sorted((corpus / "corpus").glob("*/*.txt")):
        for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", path.read_text(encoding="utf-8")):
            words = part.split()
            if 3 <= len(words) <= 80:
                out.append(" ".join(words))
    if not out:
        raise SystemExit(f"no manual text under {corpus}/corpus: the bench needs real sentences")
    return out


def _texts(
    n: int, rng: np.random.Generator, sentences: list[str], runs: int = 3, words: int = 50
) -> list[str]:
    """``n`` chunk texts of ~150 words: ``runs`` runs of consecutive real sentences (``words`` or
    more each) from random places in the manuals, so term frequencies and co-occurrence are real."""
    lengths = np.array([s.count(" ") + 1 for s in sentences])
    out = []
    for starts in rng.integers(0, len(sentences), size=(n, runs)):
        parts = []
        for i in starts:
            j, got = int(i), 0
            while got < words:
                parts.append(sentences[j % len(sentences)])
                got += lengths[j % len(sentences)]
                j += 1
        out.append(" ".join(parts))
    return out


def _questions(corpus: Path = CORPUS) -> list[str]:
    """The real FAQ questions (English and Spanish), the lexical queries of the bench."""
    lines = (corpus / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


BLOCK = 100_000  # vectors and texts are made per block of rows, each from its own seed
GENERATOR = 2  # bump when _vectors/_texts change: a cached store built by another is rebuilt


def _block(b: int, size: int, sentences: list[str]) -> tuple[np.ndarray, list[str]]:
    """Rows ``b*BLOCK ...`` of the synthetic index: the same for the same ``b`` in every run."""
    return _vectors(size, np.random.default_rng(1000 + b)), _texts(
        size, np.random.default_rng(2000 + b), sentences
    )


def _all_vectors(n: int) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for b, i in enumerate(range(0, n, BLOCK)):
        out[i : i + BLOCK] = _vectors(min(BLOCK, n - i), np.random.default_rng(1000 + b))
    return out


def _build(folder: Path, n: int, sentences: list[str], per_file: int = 1000) -> dict:
    """Write ``n`` chunks through the real store, one file (transaction) per ``per_file`` chunks,
    then ``commit`` (which trains the IVF lists when ``n`` calls for them); time and peak RSS."""
    shutil.rmtree(folder, ignore_errors=True)
    load, t0 = _load(), time.perf_counter()
    with open_index(folder, embedder_name="synthetic", create=True, dim=DIM) as index:
        for b, i in enumerate(range(0, n, BLOCK)):
            vectors, texts = _block(b, min(BLOCK, n - i), sentences)
            for f in range(0, len(texts), per_file):
                row = i + f
                chunks = _chunks(texts[f : f + per_file], row, per_file)
                index.apply([FileUpdate(str(folder), f"doc{row}.txt", f"{row:064x}", 1, 0.0, chunks,
                                        vectors[f : f + per_file])])  # fmt: skip
        written = time.perf_counter() - t0
        index.commit()
    return {
        "chunks": n,
        "generator": GENERATOR,
        "build_s": time.perf_counter() - t0,
        "write_s": written,
        "build_max_rss_mb": _rss_mb(),
        "build_loadavg": [load, _load()],
        "disk_mb": {f.name: f.stat().st_size / 1e6 for f in folder.iterdir() if f.is_file()},
    }


def _build_cached(folder: Path, n: int, sentences: list[str], keep: bool) -> dict:
    """Build the store in a child process (its own peak RSS), or reuse ``folder`` when ``keep``
    and its stamp says it was built by this generator for ``n`` chunks."""
    stamp = folder.with_name(folder.name + ".build.json")
    if keep and stamp.is_file() and (folder / "catalog.sqlite").is_file():
        built = json.loads(stamp.read_text())
        if built.get("chunks") == n and built.get("generator") == GENERATOR:
            t = time.perf_counter()
            with open_index(folder, embedder_name="synthetic", create=True, dim=DIM):
                pass  # a writer's open adds what the catalog's schema gained since (an index)
            built["migrate_s"] = built.get("migrate_s", 0.0) + time.perf_counter() - t
            if not (folder / LEXICAL).is_file():  # built before the store kept a lexical index
                built["lexical_index"] = _add_lexical(folder)
                stamp.write_text(json.dumps(built, indent=1))
            return {**built, "cached": True}
    stamp.unlink(missing_ok=True)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda: queue.put(_build(folder, n, sentences)))
    child.start()
    built = queue.get()
    child.join()
    if keep:
        stamp.write_text(json.dumps(built, indent=1))
    return {**built, "cached": False}


def _add_lexical(folder: Path) -> dict:
    """Build and save the lexical index of a store written without one (in a child: its peak RSS)."""

    def run(queue) -> None:
        load, t0 = _load(), time.perf_counter()
        with open_index(folder) as index:
            index.commit()
        queue.put({"build_s": time.perf_counter() - t0, "max_rss_mb": _rss_mb(), "loadavg": [load, _load()],
                   "file_mb": (folder / LEXICAL).stat().st_size / 1e6})  # fmt: skip

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=run, args=(queue,))
    child.start()
    out = queue.get()
    child.join()
    return out


def _chunks(texts: list[str], row: int, per_file: int) -> tuple[Chunk, ...]:
    return tuple(
        Chunk(_chunk_id(row + i, per_file), f"doc{row}.txt", t, 0, len(t), 0, i, page=i // 3 + 1)
        for i, t in enumerate(texts)
    )


def _chunk_id(row: int, per_file: int = 1000) -> str:
    return f"{row - row % per_file}-{row % per_file}"


def _recall(vectors: FlatVectors, truth: list[set[int]], queries: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's exact top ``k`` (``truth``, as ids) that ``vectors`` finds."""
    return float(
        np.mean(
            [len(t & {i for i, _ in vectors.search(q, k)}) / k for t, q in zip(truth, queries, strict=True)]
        )
    )


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


def _queries(
    n_rows: int, rng: np.random.Generator, n: int, questions: list[str]
) -> tuple[np.ndarray, list[str]]:
    """``n`` query vectors (a stored vector plus noise) and texts (the real FAQ questions, in turn)."""
    rows = rng.integers(0, n_rows, n)
    picks = np.empty((n, DIM), dtype=np.float32)
    for b in np.unique(rows // BLOCK):
        block = _vectors(min(BLOCK, n_rows - b * BLOCK), np.random.default_rng(1000 + int(b)))
        at = rows // BLOCK == b
        picks[at] = block[rows[at] - b * BLOCK]
    picks += 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    picks /= np.linalg.norm(picks, axis=1, keepdims=True)
    return picks, [questions[i % len(questions)] for i in range(n)]


OLD_SQL = (  # the FTS5 query before this bench's fixes: every word OR'ed, bm25() of every match
    "SELECT c.chunk_id, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
    "WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?"
)


def bench_store(n: int, rng: np.random.Generator, args: argparse.Namespace, sentences: list[str]) -> dict:
    """Build (or reuse) an ``n``-chunk store and time retrieval through it."""
    keep = n >= args.cache_from
    folder = (args.cache_dir if keep else Path("/tmp")) / f"docqa-bench-retrieval-{n}"
    if keep:
        folder.parent.mkdir(parents=True, exist_ok=True)
    built = _build_cached(folder, n, sentences, keep)
    if args.build_only:
        return built
    k, queries = args.k, args.queries
    qv, qt = _queries(n, rng, queries, _questions())
    vectors = _all_vectors(n)
    t = time.perf_counter()
    exact = _exact(vectors, qv)
    exact_ms = 1000 * (time.perf_counter() - t) / len(qv)
    del vectors
    embedder = _Given()
    timing: dict[str, list[float]] = {"dense": [], "lexical": [], "fusion_fetch": [], "retrieve": []}
    timing["lexical_fts5_all_words"] = []
    recall, agree = [], []
    load = _load()
    t = time.perf_counter()
    index = open_index(folder)
    index.search_dense(qv[0], 1)  # loads vectors.faiss (and whatever the store derives)
    index.search_lexical("warm", 1)
    opened = time.perf_counter() - t
    with index:
        vector_params = index._vectors.params()  # as loaded (nprobe comes from ingest.vectors)
        for i, (vector, text) in enumerate(zip(qv, qt, strict=True)):
            words = lexical_query(text)
            t = time.perf_counter()
            dense = index.search_dense(vector, 4 * k)
            timing["dense"].append(time.perf_counter() - t)
            recall.append(len({cid for cid, _ in dense[:10]} & {_chunk_id(j) for j in exact[i]}) / 10)
            t = time.perf_counter()
            lexical = index.search_lexical(words, 4 * k)
            timing["lexical"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ranked = fuse(dense, lexical, 0.7)[:k]
            index.get_chunks([cid for cid, _ in ranked])
            index.lead_ins([cid for cid, _ in ranked], 240)
            timing["fusion_fetch"].append(time.perf_counter() - t)
            embedder.vector = vector
            t = time.perf_counter()
            retrieve(text, index, embedder, k=k, dense_weight=0.7)
            timing["retrieve"].append(time.perf_counter() - t)
            if i < args.reference_queries:
                agree.append(_agreement(index, words, timing["lexical_fts5_all_words"]))
        sweep = _nprobe_sweep(index, qv, exact)
    out = {
        **built,
        "vector_store": vector_params,
        "open_s": opened,
        "recall@10_vs_exact": float(np.mean(recall)),
        "exact_numpy_ms_per_query": exact_ms,
        **{name: _ms(ts) for name, ts in timing.items() if ts},
        "lexical_top10_vs_fts5": {
            "overlap": float(np.mean([a[0] for a in agree])) if agree else None,
            "overlap_ties_counted": float(np.mean([a[1] for a in agree])) if agree else None,
            "queries": len(agree),
        },
        "nprobe_sweep": sweep,
        "max_rss_mb": _rss_mb(),
        "loadavg_before": load,
        "loadavg_after": _load(),
    }
    if n <= args.rank_bm25_up_to:
        out["lexical_top10_vs_rank_bm25"] = _rank_bm25_agreement(
            index_path=folder, qt=qt[: args.reference_queries]
        )
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _agreement(index, words: str, times: list[float]) -> tuple[float, float]:
    """Top-10 of the store's lexical search vs FTS5's own BM25 over every word (the old query):
    plain overlap, and overlap counting a hit whose FTS5 score ties the reference's 10th."""
    from ingest.lexical import match_expression

    terms = fts_terms(words)
    if not terms:
        return 1.0, 1.0
    conn = index._conn
    t = time.perf_counter()
    ref = conn.execute(OLD_SQL, (match_expression(terms), 10)).fetchall()
    times.append(time.perf_counter() - t)
    mine = [cid for cid, _ in index.search_lexical(words, 10)]
    if not ref:
        return float(not mine), float(not mine)
    want = len(ref)
    plain = len(set(mine) & {cid for cid, _ in ref}) / want
    marks = ",".join("?" * len(mine))
    scores = dict(conn.execute(
        f"SELECT c.chunk_id, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
        f"WHERE chunks_fts MATCH ? AND c.chunk_id IN ({marks})", (match_expression(terms), *mine)
    ).fetchall()) if mine else {}  # fmt: skip
    tenth = ref[-1][1]
    tied = sum(1 for cid in mine if scores.get(cid, -1e9) >= tenth - 1e-9 * abs(tenth))
    return plain, min(1.0, tied / want)


def _rank_bm25_agreement(index_path: Path, qt: list[str]) -> dict:
    """Top-10 of the store's lexical search vs ``rank_bm25.BM25Okapi`` (BM25 proper, every chunk
    tokenised as ``ingest.lexical`` does)."""
    from rank_bm25 import BM25Okapi

    from ingest.lexical import tokens

    with open_index(index_path) as index:
        rows = index._conn.execute("SELECT chunk_id, text FROM chunks ORDER BY rowid").fetchall()
        ids = [r[0] for r in rows]
        bm25 = BM25Okapi([tokens(r[1]) for r in rows])
        del rows
        overlaps = []
        for text in qt:
            words = lexical_query(text)
            query = tokens(words)
            if not query:
                continue
            scores = bm25.get_scores(query)
            top = np.argsort(-scores)[:10]
            ref = {ids[j] for j in top if scores[j] > 0}
            if not ref:
                continue
            mine = {cid for cid, _ in index.search_lexical(words, 10)}
            overlaps.append(len(mine & ref) / len(ref))
    return {"overlap": float(np.mean(overlaps)), "queries": len(overlaps)}


def _nprobe_sweep(index, qv: np.ndarray, exact: list[set[int]], k: int = 10) -> dict:
    """The store's IVF index at several nprobe: p50/p95 and recall@10 vs exact (row = id - 1)."""
    vectors = index._vectors
    if not isinstance(vectors, IVFVectors):
        return {}
    chosen, nlist = int(vectors._index.nprobe), int(vectors._index.nlist)
    out = {}
    for nprobe in sorted({4, 8, 16, 32, 64, chosen, min(nlist, 2 * chosen)}):
        vectors._index.nprobe = min(nprobe, nlist)
        times, recall = [], []
        for i, q in enumerate(qv):
            t = time.perf_counter()
            found = vectors.search(q, 4 * k)
            times.append(time.perf_counter() - t)
            recall.append(len(exact[i] & {rowid - 1 for rowid, _ in found[:k]}) / k)
        out[str(nprobe)] = {**_ms(times), "recall@10": float(np.mean(recall))}
    vectors._index.nprobe = chosen
    return out


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
    if clustered:
        qv = vectors[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal((queries, DIM)).astype(
            np.float32
        )
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    else:
        qv = _unclustered(queries, rng)
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


def bench_real_ivf(name: str, pieces: int, queries: int = 400) -> dict:
    """IVF recall@10 vs exact on REAL embeddings: the manual pages cut into 1,000-character pieces
    and the FAQ questions, embedded with ``name``; the store's nlist for that count, nprobe swept.
    Synthetic clustered vectors reach recall 1.0 at any nprobe and random ones never do: this is
    where the nprobe rule is checked."""
    from ingest.embedders import load_embedder
    from ingest.settings import load_settings

    text = " ".join(_sentences())
    docs = [text[i : i + 1000] for i in range(0, len(text), 1000)][:pieces]
    embedder = load_embedder(load_settings(embedder=name))
    t0 = time.perf_counter()
    vectors = np.concatenate([embedder.embed_documents(docs[i : i + 256]) for i in range(0, len(docs), 256)])
    qv = np.asarray(embedder.embed_queries(_questions()[:queries]), dtype=np.float32)
    embedded = time.perf_counter() - t0
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    exact = _exact(vectors, qv)
    n = len(vectors)
    sample = vectors[np.linspace(0, n - 1, min(n, TRAIN_POINTS_PER_LIST * nlist_for(n))).astype(int)]
    ivf = IVFVectors.train(vectors.shape[1], sample, n)
    ivf.add(np.arange(n), vectors)
    nlist = int(ivf._index.nlist)
    out: dict = {
        "embedder": name,
        "vectors": n,
        "dim": int(vectors.shape[1]),
        "embed_s": embedded,
        "nlist": nlist,
    }
    out["chosen_nprobe"] = nprobe_for(nlist)
    for nprobe in sorted({1, 2, 4, 8, 16, 32, nlist // 16, nlist // 8, nlist // 4, nprobe_for(nlist)} - {0}):
        ivf._index.nprobe = min(nprobe, nlist)
        out[f"nprobe{nprobe}"] = _recall(ivf, exact, qv)
    out["loadavg"] = _load()
    return out


def bench_real_index(folder: Path, queries: int = 453) -> dict:
    """IVF on an existing index's REAL vectors, as ``ingest.store`` would build it at that count:
    the lists trained on the store's sample, lists per query calibrated on the store's own
    queries (``Index.calibration_queries``: 12 consecutive words of ~200 stored chunks, encoded by
    the index's embedder), then recall@10 of the real FAQ questions against exact search at the
    calibrated count, at the former 1/32 rule, and swept; the calibration queries' recall swept
    beside them (do they stand in for questions?). Read only: nothing in ``folder`` is written."""
    from ingest import catalog
    from ingest.embedders import load_embedder
    from ingest.settings import load_settings
    from ingest.vectors import RECALL_TARGET, build_vectors

    embedder = load_embedder(load_settings(index_dir=folder))
    with open_index(folder, embedder_name=embedder.name, encode_queries=embedder.embed_queries) as index:
        count = index.count()
        with catalog.snapshot(index._conn):
            sample = index._training_sample(count)
            t0 = time.perf_counter()
            calibration = index.calibration_queries()
            calibrate_s = time.perf_counter() - t0  # sampling the chunks and encoding the queries
            batches = list(catalog.iter_vectors(index._conn))
            ivf = build_vectors(index.dim, count, batches, sample, 1, lambda: calibration)
    built_s = time.perf_counter() - t0
    vectors = np.concatenate([v for _, v in batches])
    ids = np.concatenate([np.asarray(i) for i, _ in batches])
    qv = np.asarray(embedder.embed_queries(_questions()[:queries]), dtype=np.float32)
    exact = {  # exact top 10 as ids
        name: [set(ids[list(rows)].tolist()) for rows in _exact(vectors, q)]
        for name, q in (("questions", qv), ("calibration", calibration))
    }
    nlist, chosen = int(ivf._index.nlist), int(ivf._index.nprobe)
    out: dict = {
        "index": str(folder),
        "embedder": embedder.name,
        "vectors": count,
        "nlist": nlist,
        "target": RECALL_TARGET,
        "calibrated_nprobe": chosen,
        "calibration_recall": ivf.recall,
        "calibration_queries": len(calibration),
        "calibration_queries_s": round(calibrate_s, 1),
        "build_and_calibrate_s": round(built_s, 1),
        "rule_nprobe": nprobe_for(nlist),
        "questions": len(qv),
        "sweep": {},
    }
    for nprobe in sorted({4, 8, 16, 24, 32, 48, 64, nprobe_for(nlist), chosen} - {0}):
        ivf._index.nprobe = min(nprobe, nlist)
        out["sweep"][str(nprobe)] = {
            name: _recall(ivf, exact[name], q)
            for name, q in (("questions", qv), ("calibration", calibration))
        }
    out["questions_recall_calibrated"] = out["sweep"][str(chosen)]["questions"]
    out["questions_recall_rule"] = out["sweep"][str(nprobe_for(nlist))]["questions"]
    out["loadavg"] = _load()
    return out


def bench_lexical_quality(folder: Path = Path("/tmp/docqa-bench-lexical-quality")) -> dict:
    """Lexical retrieval quality on the real dev set, no embedder needed: every manual page cut into
    1,000-character pieces plus every FAQ answer as a document of its own (12k docs, as in
    ../shared/eval/README.md); each question's gold is its own answer. nDCG@10 (one relevant
    document) of the store's lexical search, of FTS5's bm25() over every word (the engine before)
    and of rank-bm25's BM25Okapi over the same tokens, per language."""
    from rank_bm25 import BM25Okapi

    from ingest.lexical import match_expression, tokens

    records = [
        json.loads(x) for x in (CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines() if x
    ]
    docs: list[tuple[str, str]] = []  # (file name, text)
    for path in sorted((CORPUS / "corpus").glob("*/*.txt")):
        text = path.read_text(encoding="utf-8")
        docs += [
            (f"{path.parent.name}/{path.stem}-{i}.txt", text[i : i + 1000]) for i in range(0, len(text), 1000)
        ]
    docs += [(f"answers/{q['id']}.txt", q["answer"]) for q in records]
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    with open_index(folder, embedder_name="synthetic", create=True, dim=8) as index:
        for start in range(0, len(docs), 500):
            index.apply([
                FileUpdate(str(folder), name, f"{start + i:064x}", 1, 0.0,
                           (Chunk(f"c{start + i}", name, text, 0, len(text), 0, 0),),
                           rng.standard_normal((1, 8)).astype(np.float32))
                for i, (name, text) in enumerate(docs[start : start + 500])
            ])  # fmt: skip
        index.commit()
    bm25 = BM25Okapi([tokens(text) for _, text in docs])
    gold = {q["id"]: f"c{len(docs) - len(records) + i}" for i, q in enumerate(records)}
    ndcg: dict[str, dict[str, list[float]]] = {}
    overlap, times = [], {"store": [], "fts5_all_words": []}
    with open_index(folder) as index:
        index.search_lexical("warm", 1)
        for q in records:
            words = lexical_query(q["question"])
            t = time.perf_counter()
            ours = [cid for cid, _ in index.search_lexical(words, 10)]
            times["store"].append(time.perf_counter() - t)
            t = time.perf_counter()
            terms = fts_terms(words)
            fts5 = (
                [cid for cid, _ in index._conn.execute(OLD_SQL, (match_expression(terms), 10))]
                if terms
                else []
            )
            times["fts5_all_words"].append(time.perf_counter() - t)
            scores = bm25.get_scores(tokens(words))
            okapi = [f"c{j}" for j in np.argsort(-scores)[:10] if scores[j] > 0]
            overlap.append(len(set(ours) & set(fts5)) / max(1, len(fts5)))
            for engine, ranked in (("store", ours), ("fts5_all_words", fts5), ("rank_bm25", okapi)):
                hit = ranked.index(gold[q["id"]]) if gold[q["id"]] in ranked else None
                gain = 0.0 if hit is None else 1 / np.log2(hit + 2)
                for lang in ("all", q["lang"]):
                    ndcg.setdefault(engine, {}).setdefault(lang, []).append(gain)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "docs": len(docs),
        "questions": len(records),
        "ndcg@10": {e: {lang: float(np.mean(v)) for lang, v in by.items()} for e, by in ndcg.items()},
        "top10_overlap_store_vs_fts5": float(np.mean(overlap)),
        **{f"{name}_ms": _ms(ts) for name, ts in times.items()},
        "loadavg": _load(),
    }


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
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument(
        "--reference-queries", type=int, default=50, help="queries compared with FTS5/rank-bm25"
    )
    parser.add_argument(
        "--rank-bm25-up-to", type=int, default=100_000, help="largest size compared with rank-bm25"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/work/bench-1m"))
    parser.add_argument(
        "--cache-from", type=int, default=1_000_000, help="sizes from this one are kept in --cache-dir"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build (or find cached) stores, time nothing"
    )
    parser.add_argument(
        "--faiss", action="store_true", help="also FAISS alone: flat vs IVF, clustered and not"
    )
    parser.add_argument("--lexical-quality", action="store_true", help="also lexical nDCG@10 on the dev set")
    parser.add_argument("--real-ivf", default=None, help="also IVF recall on real embeddings of this model")
    parser.add_argument(
        "--real-pieces", type=int, default=20_000, help="manual pieces embedded for --real-ivf"
    )
    parser.add_argument(
        "--real-index", type=Path, default=None, help="also IVF built and calibrated on this index's vectors"
    )
    parser.add_argument("--embedder", default=None, help="also time query embedding with this model")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_retrieval.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sentences = _sentences()
    report: dict = {"dim": DIM, "k": args.k, "candidates": 4 * args.k, "cpus": os.cpu_count(), "store": []}
    print(f"{'chunks':>8} | {'dense p50/p95 ms':>17} | {'lexical p50/p95':>16} | {'fuse+fetch':>16} | "
          f"{'retrieve p50/p95':>16} | recall@10")  # fmt: skip
    for n in args.sizes:
        r = bench_store(n, rng, args, sentences)
        report["store"].append(r)
        built = (f"built in {r['build_s']:.0f} s{' (cached)' if r['cached'] else ''}, peak RSS "
                 f"{r['build_max_rss_mb']:.0f} MB, disk {sum(r['disk_mb'].values()):.0f} MB")  # fmt: skip
        if args.build_only:
            print(f"{n:8d} | {built}", flush=True)
            continue
        cells = " | ".join(
            f"{r[x]['p50_ms']:7.1f} /{r[x]['p95_ms']:7.1f}"
            for x in ("dense", "lexical", "fusion_fetch", "retrieve")
        )
        old = r.get("lexical_fts5_all_words", {}).get("p50_ms", float("nan"))
        print(f"{n:8d} | {cells} | {r['recall@10_vs_exact']:.3f}   {r['vector_store']}, {built}; "
              f"lexical top-10 vs FTS5 {r['lexical_top10_vs_fts5']}, FTS5 all-words p50 {old:.0f} ms; "
              f"load {r['loadavg_before']} -> {r['loadavg_after']}", flush=True)  # fmt: skip
        for nprobe, v in r["nprobe_sweep"].items():
            print(
                f"{'':8} |   nprobe {nprobe:>4}: {v['p50_ms']:6.2f} / {v['p95_ms']:6.2f} ms, recall@10 {v['recall@10']:.3f}"
            )
        if "lexical_top10_vs_rank_bm25" in r:
            print(f"{'':8} |   lexical top-10 vs rank-bm25: {r['lexical_top10_vs_rank_bm25']}")
    if args.faiss:
        report["faiss"] = []
        print(f"\n{'chunks':>8} | {'index':16} | {'p50 ms':>7} | {'p95 ms':>7} | recall@10")
        n = min(args.sizes)
        for clustered in (True, False):
            r = bench_faiss(n, rng, min(args.queries, 100), clustered)
            report["faiss"].append(r)
            for key, v in r.items():
                if key == "flat" or key.startswith("ivf_nprobe"):
                    print(
                        f"{n:8d} | {key:16} | {v['p50_ms']:7.2f} | {v['p95_ms']:7.2f} | {v['recall@10']:.3f}"
                    )
            print(f"{n:8d} | {r['vectors']}, IVF nlist {r['nlist']} (nprobe {r['nprobe']}) built in "
                  f"{r['ivf_build_s']:.1f} s, load {r['loadavg']}", flush=True)  # fmt: skip
    if args.lexical_quality:
        r = bench_lexical_quality()
        report["lexical_quality"] = r
        print(f"\nlexical quality on the dev set: {r}", flush=True)
    if args.real_ivf:
        r = bench_real_ivf(args.real_ivf, args.real_pieces)
        report["real_ivf"] = r
        print(f"\nIVF on real embeddings: {r}", flush=True)
    if args.real_index:
        r = bench_real_index(args.real_index)
        report["real_index"] = r
        print(f"\nIVF calibrated on a real index: {json.dumps(r, indent=1)}", flush=True)
    if args.embedder:
        r = bench_embedding(args.embedder)
        report["query_embedding"] = r
        print(f"\nquery embedding ({r['embedder']}): p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms")
    if not args.build_only:
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
