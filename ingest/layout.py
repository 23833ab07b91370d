"""The index folder's layout: the names of its files, its manifest, and how a file in it is replaced.

An index folder holds:

- ``catalog.sqlite`` (with ``-wal`` and ``-shm`` beside it while open): the single truth about what
  is indexed (files, chunks with their vectors, FTS5, ``version``); see ``ingest.catalog``.
- ``vectors.faiss``: the vector store, a cache of the catalog's vectors; see ``ingest.vectors``.
- ``lexical.npz``: the lexical (BM25) index, a cache of the catalog's chunk texts stamped with the
  catalog version it matches, rebuilt when missing or stale; see ``ingest.lexical``.
- ``manifest.json``: embedder name and dim, ``normalized``, ``format``, ``vector_store`` (the
  FAISS index kind, with ``nlist``, ``nprobe`` and ``trained_for`` for IVF), and
  ``catalog_version``, the catalog version the FAISS file was written at.
- ``milvus.db``: with ``store = "milvus"`` and no ``milvus_uri``, the Milvus Lite folder that holds
  the vectors instead of ``vectors.faiss`` (``ingest.milvus_store``).
- ``.write.lock``: held by the one process writing the index (``ingest.store``).
- ``uploads/``: files uploaded through the app or the HTTP API (``ingest.uploads``), indexed from there.
- ``feedback/feedback.sqlite``: the app's thumbs up/down votes (``ui.feedback``).

A file docqa replaces in the folder is written by ``atomic_write``: a temporary file beside it
(``.NAME.PID.tmp``), flushed to disk, renamed into place, then the folder entry flushed, so a crash
leaves the old file or the new one, never half of one.

This module knows names and bytes on disk, not what they mean: opening, searching and writing an
index is ``ingest.store``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1  # the index format this docqa writes; a newer one is refused
CATALOG = "catalog.sqlite"
VECTORS = "vectors.faiss"
MANIFEST = "manifest.json"
LOCK = ".write.lock"
MILVUS_LITE = "milvus.db"
UPLOADS = "uploads"
FEEDBACK = Path("feedback") / "feedback.sqlite"
TEMP_GLOB = ".*.tmp"  # temporaries a writer killed mid-write leaves behind
# The files whose size and modification time change whenever the index does.
CHANGING_FILES = (CATALOG, f"{CATALOG}-wal", VECTORS, MANIFEST)


def has_index(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds a catalog (it may still be empty or damaged)."""
    return (Path(index_dir).expanduser() / CATALOG).is_file()


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """``manifest.json`` as a dict; None when it is missing or unreadable."""
    try:
        data = json.loads((Path(index_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace ``manifest.json`` atomically."""
    text = json.dumps(manifest, indent=1, sort_keys=True)
    atomic_write(Path(index_dir) / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Replace ``path`` with what ``write`` puts in the temporary file it is given.

    >>> atomic_write(folder / "manifest.json", lambda tmp: tmp.write_text("{}"))  # doctest: +SKIP
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        sync_to_disk(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_to_disk(path.parent)


def remove_temporaries(index_dir: Path) -> None:
    """Delete the temporaries left by a writer killed mid-write (call it holding the write lock)."""
    for stale in Path(index_dir).glob(TEMP_GLOB):
        stale.unlink(missing_ok=True)


def sync_to_disk(path: Path) -> None:
    """Flush a file or a folder entry to disk, so a rename after it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
