"""``Store``: what retrieval, ingestion and the app need of an index, whatever holds it.

The local implementation is ``ingest.store.Index`` (SQLite catalog + a BM25 index + FAISS in an index
folder, opened with ``ingest.store.open_index``); another backend (a Milvus collection, say)
implements these methods and ``rag.retrieve``, ``rag.engine`` and the app work with it unchanged.
Tests pass in-memory doubles (``tests/rag/conftest.py``).

Chunks are known by their ``Chunk.id``; files by the name their chunks cite (``Chunk.source``,
``FileInfo.source``), which is also what the ``sources`` filter of both searches takes. A filtered
search ranks only the chunks of those files and is exact: it returns the same hits as an unfiltered
search over an index holding only those files.

The incremental bookkeeping of ingestion (file states, reused vectors, renames, the write lock) is
the local store's own (``ingest.pipeline`` and ``ingest.writer`` use ``Index`` directly).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.catalog import FileInfo, FileUpdate
from ingest.records import Chunk


class Store(Protocol):
    """An index of chunks: dense and lexical search, chunks by id, files in and out.

    Attributes:
        embedder: the name of the embedder its vectors come from; it is never searched with another.
        dim: the size of its vectors.
    """

    embedder: str
    dim: int

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` chunks nearest to a normalised query vector: (chunk_id, cosine), best first.
        ``sources``: only the chunks of these files (None: all)."""
        ...

    def search_lexical(
        self, query: str, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """BM25 over chunk text for any text: (chunk_id, score > 0, higher better), best first.
        ``sources``: only the chunks of these files (None: all)."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order; ids no longer indexed are left out."""
        ...

    def lead_ins(self, chunk_ids: Sequence[str], max_chars: int = 240) -> dict[str, str]:
        """The text before each chunk on its first line, for chunks that start mid-line."""
        ...

    def files(self) -> list[FileInfo]:
        """The indexed files."""
        ...

    def file_path(self, source: str) -> Path | None:
        """The file a chunk cites, on this machine; None if unknown or gone."""
        ...

    def count(self) -> int:
        """Number of chunks."""
        ...

    def apply(self, updates: Sequence[FileUpdate]) -> None:
        """Replace these files' chunks and vectors, all or none."""
        ...

    def remove_file(self, root: str, path: str) -> bool:
        """Remove one file and its chunks; False if the store did not have it."""
        ...

    def commit(self) -> None:
        """Make the changes so far durable and visible to other readers."""
        ...

    def close(self) -> None:
        """Release the store; it cannot be used afterwards."""
        ...
