"""The vector store behind an index: FAISS, ids = catalog chunk rowids.

The catalog (``catalog.sqlite``) keeps every chunk's vector, so this file is a cache that can
always be rebuilt from it (see ``ingest.store``). ``FlatVectors`` is exact inner-product search
(cosine on normalised vectors) in an ``IndexIDMap2``, so one document's vectors can be removed.
Another ``VectorStore`` (HNSW, IVF, a remote engine) can replace it for large indexes.

It does not know about files, chunks or versions: ``ingest.store`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class VectorStore(Protocol):
    """Vectors by integer id, searchable by inner product."""

    dim: int

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def count(self) -> int: ...

    def save(self, path: Path) -> None: ...


class FlatVectors:
    """Exact search over all vectors: ``IndexIDMap2(IndexFlatIP(dim))``.

    Args:
        dim: vector size.
        index: an existing FAISS index to wrap (from ``load``); a new empty one if None.
    """

    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path, dim: int) -> FlatVectors:
        """Read a FAISS file; raises ``ValueError`` if it is unreadable or of another size."""
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as err:
            raise ValueError(f"unreadable FAISS file {path}: {err}") from None
        if index.d != dim:
            raise ValueError(f"FAISS file {path} holds vectors of size {index.d}, expected {dim}")
        return cls(dim, index)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
            self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids with their inner products, best first."""
        k = min(k, self.count())
        if k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        scores, ids = self._index.search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def count(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        """Write to a temporary file beside ``path``, flush it to disk, then rename it into place."""
        import faiss

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self._index, str(tmp))
            sync_to_disk(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        sync_to_disk(path.parent)


def sync_to_disk(path: Path) -> None:
    """Flush a file or a folder entry to disk, so a rename after it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
