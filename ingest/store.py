"""The local ``Store``: an index folder opened, searched, and written one file at a time.

``Index`` keeps the folder's stores consistent: the SQLite catalog, the single truth (its SQL
is all in ``ingest.catalog``), and two caches of it: the FAISS vectors (``ingest.vectors``: exact
below ``ann_threshold`` vectors, IVF from it on, retrained as the index grows) and the lexical BM25
index over the chunk texts (``ingest.lexical``, ``lexical.npz``). The folder's file names and its
manifest are ``ingest.layout``'s.

Crash safety: each file's change is one SQLite transaction that bumps ``version``; ``commit()``
writes the lexical index (stamped inside with its catalog version) and the FAISS file beside the
old ones and renames them into place, then rewrites the manifest (same way) with the version the
vectors match. Whenever the catalog version differs from the version of the vectors or the lexical
index in hand (a crash between the two, another process writing), they are reloaded or rebuilt from
the catalog before any search: a mismatch is repaired, never served. A rebuild for
reading is exact (flat, no training); ``commit()`` turns it into the kind the count calls for.

It is one class over 300 lines on purpose: every read and write method holds the same lock and
brings the vectors in step with the catalog first, and that invariant reads best in one place.
This module runs no SQL itself, does not choose FAISS parameters (``ingest.vectors``) and does not
embed (``ingest.embedders``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest import catalog
from ingest.catalog import FileInfo, FileState, FileUpdate
from ingest.embed import reuse_key
from ingest.embedders import check_embedder
from ingest.errors import IndexBusy, IndexCorrupt, IndexNotFound, IndexUnavailable
from ingest.layout import (
    CATALOG,
    FORMAT,
    LOCK,
    MANIFEST,
    VECTORS,
    has_index,
    read_manifest,
    remove_temporaries,
    write_manifest,
)
from ingest.lexical import LEXICAL, LexicalIndex
from ingest.records import Chunk
from ingest.vectors import (
    ANN_THRESHOLD,
    CALIBRATION_QUERIES,
    IVF,
    TRAIN_POINTS_PER_LIST,
    FlatVectors,
    IVFVectors,
    build_vectors,
    load_vectors,
    needs_rebuild,
    nlist_for,
    plan,
)

__all__ = ["FileInfo", "FileState", "FileUpdate", "Index", "IndexBusy", "check_index", "open_index"]


def open_index(
    index_dir: Path,
    *,
    embedder_name: str | None = None,
    create: bool = False,
    dim: int | None = None,
    ann_threshold: int | None = None,
    encode_queries: Callable[[list[str]], np.ndarray] | None = None,
) -> Index:
    """Open an index folder, checking it was built with the embedder asked for.

    Args:
        index_dir: the folder.
        embedder_name: refuse the index if it was built with another embedder (None: any).
        create: make an empty index if there is none (then ``embedder_name`` and ``dim`` are needed).
        dim: refuse the index if its vectors have another size (None: any).
        ann_threshold: vector count from which ``commit`` writes an IVF index instead of an exact
            flat one (default ``ingest.vectors.ANN_THRESHOLD``).
        encode_queries: the embedder's query encoding (``Embedder.embed_queries``); when ``commit``
            trains an IVF index, the lists it probes per query are calibrated on queries made
            from the stored chunks (``Index.calibration_queries``). None, or an encoder that
            fails there (``Index.calibration_error`` says why): the default rule
            (``ingest.vectors.nprobe_for``).

    Raises:
        IndexNotFound, IndexCorrupt, EmbedderMismatch.
    """
    index_dir = Path(index_dir).expanduser().absolute()
    path = index_dir / CATALOG
    if not path.is_file() and not create:
        raise IndexNotFound(f"no index at {index_dir}; run 'docqa ingest FOLDER' first")
    if create and (embedder_name is None or dim is None):
        raise ValueError("creating an index needs embedder_name and dim")
    if create:
        index_dir.mkdir(parents=True, exist_ok=True)
    try:
        conn = catalog.connect(str(path), create=create)
        meta = catalog.read_meta(conn)
        if "embedder" not in meta and create:
            meta = {"format": str(FORMAT), "embedder": embedder_name, "dim": str(dim), "normalized": "true"}
            catalog.write_meta(conn, meta)
    except sqlite3.DatabaseError as err:
        if not _is_corrupt(err):  # a full disk is no reason to delete the index
            raise IndexUnavailable(
                f"cannot open the index at {index_dir} ({err}): is the disk full or the folder "
                "read-only? Nothing was changed; fix that and run again"
            ) from None
        raise IndexCorrupt(
            f"index at {index_dir} is damaged ({err}); delete it and run "
            f"'docqa ingest FOLDER --index {index_dir}' again"
        ) from None
    if "embedder" not in meta:
        conn.close()
        raise IndexNotFound(f"no index at {index_dir}; run 'docqa ingest FOLDER' first")
    if int(meta.get("format", FORMAT)) > FORMAT:
        conn.close()
        raise IndexCorrupt(f"index at {index_dir} has a newer format {meta['format']}; upgrade docqa")
    built, built_dim = meta["embedder"], int(meta["dim"])
    try:
        check_embedder(index_dir, built, built_dim, name=embedder_name, dim=dim)
    except BaseException:
        conn.close()
        raise
    return Index(index_dir, conn, built, built_dim, ann_threshold, encode_queries)


def _is_corrupt(err: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file damaged (or not a catalog), rather than failing to read or
    write it (a full disk, a read-only folder, a file-size limit: SQLITE_IOERR, SQLITE_FULL...)."""
    code = getattr(err, "sqlite_errorcode", None)
    return code is None or code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@contextmanager
def _writing(index_dir: Path, what: str) -> Iterator[None]:
    """Turn a write that failed for want of room or rights into ``IndexUnavailable``
    (constraint errors, which the writer handles, pass through).

    The catalog's transaction is rolled back and a half-written FAISS file is never renamed
    into place, so the index keeps what it held before; the message says so.
    """
    try:
        yield
    except (sqlite3.OperationalError, OSError, RuntimeError) as err:  # RuntimeError: FAISS's write
        if isinstance(err, sqlite3.OperationalError) and _is_corrupt(err):
            raise
        raise IndexUnavailable(
            f"could not write {what} in {index_dir} ({err}): is the disk full or the folder read-only? "
            "What was indexed before is kept; free some space and run again"
        ) from None


def check_index(index_dir: Path, embedder_name: str | None) -> None:
    """Raise EmbedderMismatch when the index in ``index_dir`` was built with another embedder;
    nothing when there is no index yet or ``embedder_name`` is None (a model folder, whose name is
    known only once loaded). Lets a command refuse before it loads a model."""
    if embedder_name is not None and has_index(index_dir):
        open_index(index_dir, embedder_name=embedder_name).close()


class Index:
    """An open index folder, the local ``ingest.store_protocol.Store``. Safe to share between
    threads; use ``open_index`` to get one."""

    def __init__(
        self,
        index_dir: Path,
        conn: sqlite3.Connection,
        embedder: str,
        dim: int,
        ann_threshold: int | None = None,
        encode_queries: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        self.path = index_dir
        self.embedder = embedder
        self.dim = dim
        self.ann_threshold = ANN_THRESHOLD if ann_threshold is None else ann_threshold
        self._encode_queries = encode_queries
        # Why the last calibration of IVF lists fell back to the default lists per query (the
        # embedder failed on the calibration queries); None: calibrated, or nothing to calibrate.
        self.calibration_error: str | None = None
        self._lexical = LexicalIndex()  # version -1: not loaded yet
        self._lexical_saved = -1
        self._conn = conn
        self._lock = threading.RLock()
        self._write_lock: Any = None
        self._vectors = FlatVectors(dim)
        self._vectors_version = -1  # catalog version the vectors in hand match; -1: not loaded yet
        self._saved_version = -1

    # -- reading -------------------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """manifest.json as a dict (embedder, dim, normalized, format, catalog_version, ...)."""
        manifest = read_manifest(self.path)
        if manifest is None:
            return {"format": FORMAT, "embedder": self.embedder, "dim": self.dim, "normalized": True}
        return manifest

    def files(self) -> list[FileInfo]:
        """The indexed files, by root then path (files skipped for their content are left out)."""
        with self._lock:
            return catalog.indexed_files(self._conn)

    def count(self) -> int:
        """Number of chunks."""
        with self._lock:
            return catalog.chunk_count(self._conn)

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` chunks nearest to a normalised query vector: (chunk_id, cosine), best first.

        ``sources``: only the chunks of the files citing these names, searched exactly (every one
        of them scored, whatever the FAISS index kind); None: all chunks.
        """
        with self._lock:
            self._sync()
            allowed = None if sources is None else catalog.source_rowids(self._conn, sources)
            hits = self._vectors.search(query_vector, k, allowed)
            ids = catalog.chunk_ids(self._conn, [rowid for rowid, _ in hits])
        return [(ids[rowid], score) for rowid, score in hits if rowid in ids]

    def search_lexical(
        self, query: str, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """BM25 over chunk text: (chunk_id, score > 0, higher better), best first.

        Any text is accepted: its words are OR'ed, punctuation and quotes dropped, accents folded;
        ranked by ``ingest.lexical.LexicalIndex`` (FTS5's BM25, in memory), which leaves out words
        in half the chunks or more when that cannot change the ``k`` best. ``sources``: only the
        chunks of the files citing these names, ranked exactly (every word kept).
        """
        if k <= 0:
            return []
        with self._lock:
            self._sync()
            among = None if sources is None else catalog.source_rowids(self._conn, sources)
            hits = self._lexical.search(query, k, among)
            ids = catalog.chunk_ids(self._conn, [rowid for rowid, _ in hits])
        return [(ids[rowid], score) for rowid, score in hits if rowid in ids]

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order; ids no longer indexed are left out."""
        with self._lock:
            found = catalog.get_chunks(self._conn, chunk_ids)
        return [found[i] for i in chunk_ids if i in found]

    def file_vectors(self, root: str, path: str) -> dict[str, np.ndarray]:
        """Chunk text -> vector of a file's indexed version (empty when it is not indexed)."""
        with self._lock:
            found = catalog.file_vectors(self._conn, root, path)
        return {text: np.frombuffer(blob, dtype=np.float32) for _, text, blob in found}

    def reusable_vectors(self, root: str, path: str) -> dict[str, np.ndarray]:
        """``ingest.embed.reuse_key`` (heading and text) -> vector of a file's indexed version.

        A changed file keeps the vectors of its unchanged chunks: only new text (or text under a
        new heading, its title) is embedded.
        """
        with self._lock:
            found = catalog.file_vectors(self._conn, root, path)
        return {reuse_key(h, text): np.frombuffer(blob, dtype=np.float32) for h, text, blob in found}

    def meta(self, key: str) -> str | None:
        """A value recorded in the catalog's meta table, None when absent."""
        with self._lock:
            return catalog.read_meta(self._conn).get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Record ``key = value`` in the catalog (its own transaction)."""
        with self._lock, _writing(self.path, CATALOG):
            self.begin_write()
            catalog.write_meta(self._conn, {key: value})

    def lead_ins(self, chunk_ids: Sequence[str], max_chars: int = 240) -> dict[str, str]:
        """The text before each chunk on its first line, for chunks that start mid-line.

        See ``catalog.lead_ins``: shown with a passage so that a chunk starting at "PV2 range is
        ..." keeps the "PV1 range is ..." just before it.
        """
        with self._lock:
            return catalog.lead_ins(self._conn, chunk_ids, max_chars)

    def file_path(self, source: str) -> Path | None:
        """Absolute path of the file a chunk cites, or None if unknown or gone from disk."""
        with self._lock:
            found = catalog.file_location(self._conn, source)
        path = Path(*found) if found else None
        return path if path is not None and path.is_file() else None

    # -- writing (ingestion) -------------------------------------------------------------------

    def file_states(self, root: str) -> dict[str, FileState]:
        """What the catalog knows of each file under ``root``, by relative path."""
        with self._lock:
            return catalog.file_states(self._conn, root)

    def same_content(self, sha256: str, root: str, path: str) -> tuple[str, str] | None:
        """(root, path) of another indexed file with the same content, if any."""
        with self._lock:
            return catalog.same_content(self._conn, sha256, root, path)

    def apply(self, updates: Sequence[FileUpdate]) -> None:
        """Replace these files' chunks and vectors, in one transaction."""
        with self._lock:
            self.begin_write()
            self._sync()
            with _writing(self.path, CATALOG):
                removed, added = catalog.apply(self._conn, updates)
            self._vectors.remove(removed)
            self._lexical.remove(removed)
            vectors = [u.vectors for u in updates if u.chunks]
            if added:
                self._vectors.add(added, np.concatenate(vectors))
                fields = ((c.heading, c.text) for u in updates for c in u.chunks)
                self._lexical.add((rowid, h, t) for rowid, (h, t) in zip(added, fields, strict=True))
            self._vectors_version = self._lexical.version = catalog.read_version(self._conn)

    def remove_file(self, root: str, path: str) -> bool:
        """Remove one file and its chunks; False if the index did not have it."""
        with self._lock:
            self.begin_write()
            self._sync()
            with _writing(self.path, CATALOG):
                removed = catalog.remove(self._conn, root, path)
            if removed is None:
                return False
            self._vectors.remove(removed)
            self._lexical.remove(removed)
            self._vectors_version = self._lexical.version = catalog.read_version(self._conn)
            return True

    def move_file(self, root: str, old: str, new: str, size: int, mtime: float) -> None:
        """Record that a file was renamed (same content): no chunk or vector changes."""
        with self._lock:
            self.begin_write()
            self._sync()
            with _writing(self.path, CATALOG):
                catalog.move(self._conn, root, old, new, size, mtime)
            self._vectors_version = self._lexical.version = catalog.read_version(self._conn)

    def commit(self) -> None:
        """Write the lexical index (``lexical.npz``, stamped inside with its catalog version) and
        the vectors to ``vectors.faiss`` atomically, then stamp the manifest.

        First, if the vectors in hand are not the kind their count calls for (flat at
        ``ann_threshold`` or more, IVF trained for a count ``GROWTH`` times away), they are rebuilt
        from the catalog as that kind (training IVF lists takes seconds at 100k vectors). IVF
        lists probed by the default rule are calibrated when a query encoder was given."""
        with self._lock:
            version = catalog.read_version(self._conn)
            current = self.manifest.get("catalog_version") == version and (self.path / LEXICAL).is_file()
            if self._vectors_version == -1 and current:
                return  # nothing loaded, nothing written, and the files on disk are current
            self.begin_write()
            self._sync()
            if self._lexical_saved != self._lexical.version or not (self.path / LEXICAL).is_file():
                with _writing(self.path, LEXICAL):
                    self._lexical.save(self.path / LEXICAL)
                self._lexical_saved = self._lexical.version
            if needs_rebuild(self._vectors, self._vectors.count(), self.ann_threshold):
                self._vectors, self._vectors_version = FlatVectors(self.dim), -1  # free it first
                self._rebuild(fit=True)
            elif self._uncalibrated() and (queries := self._calibration_or_none()) is not None:
                self._vectors.calibrate(queries)  # an IVF index from before calibration, or one it failed on
            elif self._saved_version == self._vectors_version and (self.path / VECTORS).is_file():
                return
            with _writing(self.path, VECTORS):
                self._vectors.save(self.path / VECTORS)
            ivf_keys = ("nlist", "nprobe", "nprobe_recall", "trained_for")
            old = {k: v for k, v in self.manifest.items() if k not in ivf_keys}
            manifest = old | {
                "format": FORMAT,
                "embedder": self.embedder,
                "dim": self.dim,
                "normalized": True,
                **self._vectors.params(),
                "catalog_version": self._vectors_version,
                "chunks": self._vectors.count(),
            }
            with _writing(self.path, MANIFEST):
                write_manifest(self.path, manifest)
            self._saved_version = self._vectors_version

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._write_lock is not None:
                self._write_lock.release()
                self._write_lock = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def begin_write(self) -> None:
        """Take the folder's write lock (one writer at a time; held until ``close``).

        Every write method calls it; call it first to fail fast.

        Raises:
            IndexBusy: another process is writing this index.
        """
        if self._write_lock is not None:
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise IndexBusy(
                f"index at {self.path} is being written by another process; wait for it to finish"
            ) from None
        self._write_lock = lock
        remove_temporaries(self.path)

    # -- private -------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Make the vectors and the lexical index in hand match the catalog's version: load their
        files if their stamps match, else rebuild them from the catalog."""
        version = catalog.read_version(self._conn)
        if version != self._lexical.version:
            self._sync_lexical(version)
        if version != self._vectors_version:
            self._sync_vectors(version)

    def _sync_lexical(self, version: int) -> None:
        """Load ``lexical.npz`` if it matches catalog ``version`` and holds every chunk, else build
        the lexical index from the chunk texts (seconds at 100k chunks)."""
        try:
            lexical = LexicalIndex.load(self.path / LEXICAL, version)
        except ValueError:
            lexical = None
        if lexical is not None and lexical.version == version and lexical.count() == self.count():
            self._lexical, self._lexical_saved = lexical, version
            return
        self._lexical = LexicalIndex()  # free the old one first
        with catalog.snapshot(self._conn):  # the version and the texts agree
            version = catalog.read_version(self._conn)
            self._lexical = LexicalIndex.build(catalog.iter_texts(self._conn), version)

    def _sync_vectors(self, version: int) -> None:
        """Load the FAISS file if its stamp matches catalog ``version``, else rebuild the vectors
        from the ones stored in the catalog."""
        manifest = self.manifest
        stamp = manifest.get("catalog_version")
        if stamp == version and (self.path / VECTORS).is_file():
            try:
                trained = int(manifest["trained_for"]) if manifest.get("trained_for") else None
                recall = manifest.get("nprobe_recall")  # set only where calibrate chose nprobe
                nprobe = int(manifest["nprobe"]) if recall is not None and manifest.get("nprobe") else None
                vectors = load_vectors(self.path / VECTORS, self.dim, trained, nprobe, recall)
            except ValueError:
                vectors = None
            if vectors is not None and vectors.count() == self.count():
                self._vectors, self._vectors_version, self._saved_version = vectors, version, version
                return
        self._rebuild()

    def _rebuild(self, *, fit: bool = False) -> None:
        """Vectors from the catalog: exact flat ones, or (``fit``) the kind ``plan`` chooses."""
        with catalog.snapshot(self._conn):  # the version and the vectors agree
            version = catalog.read_version(self._conn)
            count = catalog.vector_count(self._conn)
            ivf = fit and plan(count, self.ann_threshold) == IVF
            sample = self._training_sample(count) if ivf else None
            threshold = self.ann_threshold if ivf else count + 1
            queries = self._calibration_or_none if ivf and self._encode_queries is not None else None
            vectors = build_vectors(
                self.dim, count, catalog.iter_vectors(self._conn), sample, threshold, queries
            )
        self._vectors, self._vectors_version = vectors, version

    def _uncalibrated(self) -> bool:
        """IVF vectors probing the default rule although a query encoder could calibrate them."""
        return (
            isinstance(self._vectors, IVFVectors)
            and self._vectors.recall is None
            and self._encode_queries is not None
        )

    def _calibration_or_none(self) -> np.ndarray | None:
        """``calibration_queries``, or None (and ``calibration_error`` set) if the embedder fails:
        the index is still written, probing ``nprobe_for``'s share of its lists."""
        self.calibration_error = None
        try:
            return self.calibration_queries()
        except Exception as exc:  # any embedder failure: the vectors are fine, only the probe count is not
            self.calibration_error = f"{type(exc).__name__}: {exc}"
            return None

    def calibration_queries(self, want: int = CALIBRATION_QUERIES, words: int = 12) -> np.ndarray:
        """Query vectors for ``IVFVectors.calibrate``: ``words`` consecutive words (at a seeded
        random place) of about ``want`` chunks spread over the catalog, encoded as queries.

        Made from the documents themselves, they ask what the index can be asked; on real
        EmbeddingGemma vectors they need a few more lists than real questions do (bench/README.md).
        """
        if self._encode_queries is None:
            raise ValueError("no query encoder was given to open_index")
        rng = np.random.default_rng(0)
        queries = []
        for text in catalog.sample_texts(self._conn, want):
            parts = text.split()
            start = int(rng.integers(0, len(parts) - words + 1)) if len(parts) > words else 0
            queries.append(" ".join(parts[start : start + words]))
        if not queries:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self._encode_queries(queries), dtype=np.float32)

    def _training_sample(self, count: int) -> np.ndarray:
        """About ``TRAIN_POINTS_PER_LIST`` vectors per IVF list, at rowids spread evenly over the
        catalog (never fewer than the lists; all of them for a small index)."""
        want = min(count, TRAIN_POINTS_PER_LIST * nlist_for(count))
        return catalog.sample_vectors(self._conn, count, want, nlist_for(count))
