"""``open_store``: the index the settings ask for, local or Milvus, behind one call.

``store = "local"`` (the default) is ``ingest.store.open_index``: vectors in ``vectors.faiss``.
``store = "milvus"`` is ``ingest.milvus_store.open_milvus_store``: the same catalog in the same
index folder, the vectors in a Milvus collection (Milvus Lite by default). Either way the result is
an ``ingest.store.Index`` (``MilvusStore`` is one), so ingestion, retrieval and the app use it
unchanged. This module chooses; it does not open, search or write anything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ingest.settings import Settings
from ingest.store import Index, open_index


def open_store(
    settings: Settings,
    index_dir: Path | None = None,
    *,
    embedder_name: str | None = None,
    create: bool = False,
    dim: int | None = None,
    encode_queries: Callable[[list[str]], np.ndarray] | None = None,
) -> Index:
    """Open the index in ``index_dir`` (default ``settings.index_dir``) with the settings' store.

    Args:
        settings: ``store``, ``milvus_uri`` and ``milvus_collection`` are read.
        index_dir: the index folder; its catalog is the truth whichever the store.
        embedder_name, create, dim, encode_queries: as for ``ingest.store.open_index``
            (Milvus has no use for ``encode_queries``).

    Raises:
        IndexNotFound, IndexCorrupt, EmbedderMismatch; with Milvus also IndexBusy (a Milvus Lite
        file open in another process) and IndexUnavailable (Milvus cannot be reached).
    """
    folder = Path(settings.index_dir if index_dir is None else index_dir)
    if settings.store == "milvus":
        from ingest.milvus_store import open_milvus_store

        return open_milvus_store(
            folder,
            uri=settings.milvus_uri,
            collection=settings.milvus_collection,
            embedder_name=embedder_name,
            create=create,
            dim=dim,
        )
    return open_index(
        folder, embedder_name=embedder_name, create=create, dim=dim, encode_queries=encode_queries
    )
