"""Dense search through the product's store: Milvus Lite (``store = "milvus"``) vs local FAISS.

The same synthetic index for both (``bench_retrieval``'s clustered 768-dim normalised vectors,
``--chunks`` of them, one file per 100 chunks), written through ``ingest.stores.open_store``. Timed:
``search_dense`` (k=20) unfiltered and limited to 3 files (``sources``), in interleaved rounds so
both stores see the same machine load; writing the index (apply + commit); and reopening it
(Milvus compares its ids with the catalog's on first use; FAISS loads its file). Checked: both
stores return the same ids for every query. Figures go to ``bench/results/bench_milvus.json``.

    python bench/bench_milvus.py                  # 10k chunks, 200 queries
    python bench/bench_milvus.py --chunks 2000 --queries 50
    OMP_NUM_THREADS=1 python bench/bench_milvus.py --out bench_milvus-omp1.json   # FAISS on one thread
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_retrieval import DIM, _vectors

from ingest.catalog import FileUpdate
from ingest.records import Chunk
from ingest.settings import Settings
from ingest.stores import open_store

RESULTS = Path(__file__).resolve().parent / "results"
PER_FILE = 100
STORES = {"faiss": Settings(), "milvus-lite": Settings(store="milvus")}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _updates(folder: Path, vectors: np.ndarray) -> list[FileUpdate]:
    out = []
    for row in range(0, len(vectors), PER_FILE):
        part = vectors[row : row + PER_FILE]
        text = [f"chunk {row + i}" for i in range(len(part))]
        chunks = tuple(
            Chunk(f"{row + i:08d}", f"doc{row}.txt", t, 0, len(t), 0, i) for i, t in enumerate(text)
        )
        out.append(FileUpdate(str(folder), f"doc{row}.txt", f"{row:064x}", 1, 0.0, chunks, part))
    return out


def _build(settings: Settings, folder: Path, vectors: np.ndarray) -> float:
    started = time.perf_counter()
    with open_store(settings, folder, embedder_name="synthetic", create=True, dim=DIM) as index:
        for update in _updates(folder, vectors):
            index.apply([update])
        index.commit()
    return time.perf_counter() - started


def _ms(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the queries")
    parser.add_argument("--out", default="bench_milvus.json", help="file name under bench/results")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    vectors = _vectors(args.chunks, rng)
    picks = rng.integers(0, args.chunks, args.queries)
    queries = vectors[picks] + 0.05 * rng.standard_normal((args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    files = sorted({f"doc{(int(p) // PER_FILE) * PER_FILE}.txt" for p in picks[:3]})

    result: dict = {"chunks": args.chunks, "dim": DIM, "queries": args.queries, "k": 20, "loadavg": [_load()]}
    result["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    work = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    try:
        folders = {name: work / name for name in STORES}
        result["build_s"] = {name: round(_build(s, folders[name], vectors), 2) for name, s in STORES.items()}
        result["loadavg"].append(_load())
        opened, stores = {}, {}
        for name, settings in STORES.items():
            started = time.perf_counter()
            stores[name] = open_store(settings, folders[name])
            stores[name].search_dense(queries[0], 1)  # the first search loads / compares
            opened[name] = round(time.perf_counter() - started, 3)
        result["reopen_and_first_search_s"] = opened
        times = {name: {"all": [], "3 files": []} for name in STORES}
        hits: dict[str, list] = {name: [] for name in STORES}
        for _ in range(args.rounds):
            for name, index in stores.items():
                for q in queries:
                    t0 = time.perf_counter()
                    found = index.search_dense(q, 20)
                    times[name]["all"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    index.search_dense(q, 20, sources=files)
                    times[name]["3 files"].append(time.perf_counter() - t0)
                    hits[name].append([cid for cid, _ in found])
        result["loadavg"].append(_load())
        result["search_dense"] = {
            name: {kind: _ms(t) for kind, t in by.items()} for name, by in times.items()
        }
        result["same_ids"] = hits["faiss"] == hits["milvus-lite"]
        for index in stores.values():
            index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    faiss, milvus = result["search_dense"]["faiss"], result["search_dense"]["milvus-lite"]
    result["ratio_p50"] = {k: round(milvus[k]["p50_ms"] / faiss[k]["p50_ms"], 1) for k in faiss}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
