"""The vector store behind an index: FAISS, ids = catalog chunk rowids.

The catalog (``catalog.sqlite``) keeps every chunk's vector, so this file is a cache that can
always be rebuilt from it (see ``ingest.store``). ``FlatVectors`` is exact inner-product search
(cosine on normalised vectors) in an ``IndexIDMap2``, so one document's vectors can be removed.
``IVFVectors`` is an ``IndexIVFFlat`` (inner product, ids kept by the inverted lists, so removal
by id works too) for large indexes: about 2*sqrt(N) lists trained on the stored vectors, and as
many of them probed per query as ``IVFVectors.calibrate`` finds keep ``RECALL_TARGET`` of exact
search's top 10 for query-like vectors (1/32 of them, at least 16, when nothing calibrated it).
``plan`` says which one fits a vector count (flat below ``ANN_THRESHOLD``) and ``needs_rebuild``
when the one in hand no longer fits (the count crossed the threshold, or grew or shrank
``GROWTH`` times since the lists were trained).
HNSW is not used: FAISS cannot remove ids from it.

It does not know about files, chunks or versions: ``ingest.store`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ingest.layout import atomic_write

# Flat (exact) below this many vectors, IVF from it on. bench/bench_retrieval.py (2 loaded cores):
# exact search p50 10 ms at 10k, 64 ms at 100k, ~800 ms at 1M; IVF at 100k 3.3 ms with recall@10
# 1.000 vs exact, its lists trained and filled in 11 s. Below ~50k exact search costs less than the
# lexical search beside it, and needs no training.
ANN_THRESHOLD = 50_000
GROWTH = 4  # retrain the IVF lists when the count is GROWTH times above or below the trained one
TRAIN_POINTS_PER_LIST = 39  # k-means sample: FAISS's minimum per centroid (cost grows with it)
TRAIN_ITERATIONS = 10
# IVFVectors.calibrate: the share of exact search's top 10 the probed lists must hold, on how many
# query vectors. On the dev corpus's real EmbeddingGemma vectors (12,556 chunks, 224 lists), the
# 453 FAQ questions get recall@10 0.927 at 1/32 of the lists (16), 0.949 at 24, 0.968 at 36; queries
# made of 12 consecutive words of the stored chunks (``Index.calibration_queries``) track them from
# below (0.900, 0.932, 0.957), so calibrating on those chose 36 (bench_retrieval.py --real-index).
RECALL_TARGET = 0.95
CALIBRATION_QUERIES = 200

FLAT, IVF = "faiss-flat-ip", "faiss-ivf-flat-ip"


class FlatVectors:
    """Exact search over all vectors: ``IndexIDMap2(IndexFlatIP(dim))``.

    Args:
        dim: vector size.
        index: an existing FAISS index to wrap (from ``load``); a new empty one if None.
    """

    kind = FLAT

    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path, dim: int) -> FlatVectors:
        """Read a flat FAISS file; raises ``ValueError`` if it is unreadable, of another size or
        not flat (``load_vectors`` reads either kind)."""
        vectors = load_vectors(path, dim)
        if vectors.kind != FLAT:
            raise ValueError(f"FAISS file {path} holds a {vectors.kind} index, not a flat one")
        return vectors

    def params(self) -> dict[str, int | str]:
        return {"vector_store": self.kind}

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
            self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(
        self, vector: np.ndarray, k: int, among: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ids with their inner products, best first.

        ``among``: only these ids, every one of them scored (exact, whatever the index kind).
        """
        k = min(k, self.count() if among is None else len(among))
        if k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        if among is None:
            scores, ids = self._index.search(query, k)
        else:
            import faiss

            selector = faiss.IDSelectorBatch(np.asarray(among, dtype=np.int64))
            scores, ids = self._index.search(query, k, params=self._exact(selector))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _exact(self, selector: object) -> object:
        """Search parameters that score every vector the selector lets through."""
        import faiss

        return faiss.SearchParameters(sel=selector)

    def count(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        """Write to a temporary file beside ``path``, flush it to disk, then rename it into place.

        FAISS writes through a Python file object: given a file name, it ignores a failed final
        flush, and a full disk left a truncated file renamed into place; Python raises OSError.
        """
        import faiss

        def write(tmp: Path) -> None:
            with tmp.open("wb") as file:
                faiss.write_index(self._index, faiss.PyCallbackIOWriter(file.write))

        atomic_write(path, write)


class IVFVectors(FlatVectors):
    """Approximate search: ``IndexIVFFlat`` over inner product, ids stored in its inverted lists.

    Build one with ``IVFVectors.train`` (k-means on a sample of the vectors), then ``add`` them.
    ``remove`` scans the lists for the ids (no direct map: the catalog keeps the vectors, so
    nothing needs ``reconstruct``).

    Args:
        dim: vector size.
        index: a trained ``faiss.IndexIVFFlat``.
        trained_for: the vector count the lists were sized and trained for.
        nprobe: lists searched per query (a calibrated value, from the manifest); default
            ``nprobe_for(nlist)``.
        recall: the recall@10 ``calibrate`` measured at ``nprobe`` (None: not calibrated).
    """

    kind = IVF

    def __init__(
        self,
        dim: int,
        index: object,
        trained_for: int,
        nprobe: int | None = None,
        recall: float | None = None,
    ) -> None:
        self.dim = dim
        self._index = index
        self.trained_for = trained_for
        index.nprobe = min(int(index.nlist), nprobe) if nprobe else nprobe_for(index.nlist)
        self.recall = recall if nprobe else None

    @classmethod
    def train(cls, dim: int, sample: np.ndarray, count: int) -> IVFVectors:
        """An empty IVF index with ``nlist_for(count)`` lists trained on ``sample`` (rows taken
        evenly from the vectors it will hold; ``TRAIN_POINTS_PER_LIST`` per list are enough)."""
        import faiss

        nlist = nlist_for(count)
        sample = np.ascontiguousarray(sample, dtype=np.float32).reshape(-1, dim)
        if len(sample) < nlist:
            raise ValueError(f"{len(sample)} training vectors for {nlist} lists; need at least {nlist}")
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = TRAIN_ITERATIONS
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        index.cp.seed = 1234
        index.train(sample)
        return cls(dim, index, count)

    def _exact(self, selector: object) -> object:
        import faiss

        return faiss.SearchParametersIVF(sel=selector, nprobe=int(self._index.nlist))  # every list

    def calibrate(self, queries: np.ndarray, target: float = RECALL_TARGET, k: int = 10) -> float:
        """Probe the fewest lists (at least ``nprobe_for``'s) whose top ``k`` holds ``target`` of
        exact search's top ``k`` for ``queries``, on average; returns the recall reached there.

        Exact search is the same index with every list probed. The counts tried grow by half at
        each step (16, 24, 36, ...), up to every list, which is exact search and recall 1.
        Calibrate on query-like vectors: the stored vectors themselves sit inside their own lists
        and ask for fewer (``RECALL_TARGET``'s comment).
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        nlist = int(self._index.nlist)
        k = min(k, self.count())
        if len(queries) == 0 or k <= 0:
            return 1.0
        every = faiss.SearchParametersIVF(nprobe=nlist)
        _, exact = self._index.search(queries, k, params=every)
        truth = [set(row[row >= 0].tolist()) for row in exact]
        nprobe = nprobe_for(nlist)
        while True:
            _, found = self._index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
            recall = float(
                np.mean(
                    [len(t & set(f.tolist())) / max(1, len(t)) for t, f in zip(truth, found, strict=True)]
                )
            )
            if recall >= target or nprobe >= nlist:
                break
            nprobe = min(nlist, nprobe + max(1, nprobe // 2))
        self._index.nprobe = nprobe
        self.recall = round(recall, 4)
        return self.recall

    def params(self) -> dict[str, int | str | float]:
        nlist, nprobe = int(self._index.nlist), int(self._index.nprobe)
        out: dict[str, int | str | float] = {
            "vector_store": self.kind,
            "nlist": nlist,
            "nprobe": nprobe,
            "trained_for": self.trained_for,
        }
        if self.recall is not None:
            out["nprobe_recall"] = self.recall  # what calibrate measured at nprobe
        return out


def load_vectors(
    path: Path,
    dim: int,
    trained_for: int | None = None,
    nprobe: int | None = None,
    recall: float | None = None,
) -> FlatVectors:
    """Read a FAISS file written by ``save``: a ``FlatVectors`` or an ``IVFVectors``.

    Args:
        path: the file.
        dim: the vector size expected.
        trained_for: the count an IVF index was trained for (the manifest's); default its size.
        nprobe, recall: an IVF index's calibrated lists per query and the recall measured there
            (the manifest's); default ``nprobe_for``'s rule.

    Raises:
        ValueError: unreadable, of another size, or an index type this module does not write.
    """
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise ValueError(f"unreadable FAISS file {path}: {err}") from None
    if index.d != dim:
        raise ValueError(f"FAISS file {path} holds vectors of size {index.d}, expected {dim}")
    if isinstance(index, faiss.IndexIVFFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return IVFVectors(dim, index, trained_for or int(index.ntotal), nprobe, recall)
    if isinstance(index, faiss.IndexIDMap2) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return FlatVectors(dim, index)
    raise ValueError(f"FAISS file {path} holds an index of type {type(index).__name__}")


def nlist_for(count: int) -> int:
    """IVF lists for ``count`` vectors: 2*sqrt(N) (~1,000 vectors a list at 250k).

    4*sqrt(N) trained 10x slower at 100k for no recall gain on the bench."""
    return max(1, min(count, round(2 * math.sqrt(count))))


def nprobe_for(nlist: int) -> int:
    """Lists searched per query when nothing calibrated them (``IVFVectors.calibrate`` starts
    here): 1/32 of them, at least 16 (all of them below 16 lists).

    bench/bench_retrieval.py at 1M vectors (2,000 lists, 3 GB): 1/8 (250 lists) took 57 ms a query,
    more than the whole retrieval budget (30 ms with lexical search and fusion); 1/32 (62 lists) is
    4x less work. Recall@10 against exact search: 1.000 at 1/32 on the bench's clustered vectors at
    100k and 1M; on real embeddings (all-MiniLM-L6-v2 over the dev-set manuals, the bench's
    ``--real-ivf``) see bench/README.md. Unclustered random vectors, the worst case, need far more."""
    return min(nlist, max(16, nlist // 32))


def plan(count: int, threshold: int = ANN_THRESHOLD) -> str:
    """The index kind for ``count`` vectors: ``FLAT`` below ``threshold``, else ``IVF``."""
    return IVF if count >= max(1, threshold) else FLAT


def needs_rebuild(vectors: FlatVectors, count: int, threshold: int = ANN_THRESHOLD) -> bool:
    """Whether ``vectors`` (holding ``count``) should be rebuilt as ``plan`` says.

    Flat becomes IVF at ``threshold``; IVF goes back to flat below half of it (so a file added and
    removed at the threshold does not retrain each time), and is retrained when the count is
    ``GROWTH`` times above or below the count its lists were trained for.
    """
    if not isinstance(vectors, IVFVectors):
        return plan(count, threshold) == IVF
    if count < threshold // 2:
        return True
    return count > GROWTH * vectors.trained_for or GROWTH * count < vectors.trained_for


def build_vectors(
    dim: int,
    count: int,
    batches: Iterable[tuple[Sequence[int], np.ndarray]],
    sample: np.ndarray | None = None,
    threshold: int = ANN_THRESHOLD,
    queries: Callable[[], np.ndarray | None] | None = None,
) -> FlatVectors:
    """The store ``plan`` chooses for ``count`` vectors, holding ``batches`` (ids, vectors).

    ``sample`` (rows spread over the vectors) trains an IVF index; needed when ``count`` reaches
    ``threshold``. ``queries`` (called only for an IVF index, once it holds every vector) gives
    the query vectors ``IVFVectors.calibrate`` sets the lists per query on; None (or a call that
    returns None): the default rule.
    """
    if plan(count, threshold) == IVF:
        if sample is None:
            raise ValueError("an IVF index needs a training sample")
        vectors: FlatVectors = IVFVectors.train(dim, sample, count)
    else:
        vectors = FlatVectors(dim)
    for ids, batch in batches:
        vectors.add(ids, batch)
    if isinstance(vectors, IVFVectors) and queries is not None:
        calibration = queries()
        if calibration is not None:
            vectors.calibrate(calibration)
    return vectors
