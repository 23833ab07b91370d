"""The pipeline's inner loop: load, chunk, embed and store files, a window of chunks at a time.

Chunks of several files gather in a window of 8 batches; the window is embedded sorted by
length (batches of ``embed_batch_size`` with little padding) and written in one transaction, each
file's old chunks replaced. Memory is bounded by the window (and the largest single file), never by
the folder. A file whose content cannot be indexed (corrupt, encrypted, no text) is recorded as
skipped in the catalog, so reruns neither parse it again nor forget the reason.

Used by ``ingest.pipeline``; not a public API.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ingest.catalog import FileUpdate
from ingest.chunk import chunk_limit, chunk_sections
from ingest.embed import Embedder, reuse_key
from ingest.errors import LoadError, ModelError
from ingest.load import load_file_with_warnings
from ingest.ocr import load_ocr
from ingest.records import Chunk, FileRecord, Skipped
from ingest.settings import Settings
from ingest.store import Index

_WINDOW_BATCHES = 8  # batches embedded (length-sorted) and committed together: bounded memory
_COMMIT_SECONDS = 60.0  # the FAISS file is rewritten at least this often during a run


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: files are those to parse (new or changed); bytes give a fair ETA."""

    files_done: int
    files_total: int
    chunks_done: int
    bytes_done: int
    bytes_total: int
    path: str = ""
    note: str = ""  # what the file in hand is waiting for, e.g. "OCR page 3/40"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a ``Writer`` run did, by relative path: the pipeline's report is built from it."""

    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]  # files that vanished during the run
    skipped: tuple[Skipped, ...]
    warnings: tuple[Skipped, ...]
    chunks_added: int
    chunks_reused: int


@dataclass(frozen=True, slots=True)
class _Pending:
    record: FileRecord
    chunks: tuple[Chunk, ...]
    pages: int
    known: dict[str, np.ndarray]  # chunk text -> vector from the file's previous version


class Writer:
    """Adds or replaces files in an open index; ``run`` says what it did."""

    def __init__(
        self,
        index: Index,
        root: str,
        embedder: Embedder,
        settings: Settings,
        progress: Callable[[Progress], None] | None,
        *,
        previous: set[str],
        reuse: bool = True,
    ) -> None:
        self._added: list[str] = []
        self._updated: list[str] = []
        self._removed: list[str] = []
        self._skipped: list[Skipped] = []
        self._warnings: list[Skipped] = []
        self._chunks_added = 0
        self._chunks_reused = 0
        self._index, self._root, self._embedder = index, root, embedder
        self._batch = settings.embed_batch_size
        self._size, self._overlap = chunk_limit(
            embedder.max_tokens, settings.chunk_tokens, settings.chunk_overlap
        )
        self._progress = progress
        self._ocr = load_ocr(settings.ocr, settings.ocr_dpi, self._ocr_page)
        self._tables = settings.tables == "on"
        self._note, self._reading = "", ""
        self._previous = previous
        # False when the index's vectors were made from other inputs (without titles): then a
        # changed file's unchanged chunks are embedded again instead of keeping their vectors.
        self._reuse = reuse
        self._pending: list[_Pending] = []
        self._skips: list[FileUpdate] = []
        self._last_commit = time.monotonic()
        # Progress counters; bytes of a file in the window are credited chunk by chunk.
        self._files_done = self._files_total = self._chunks_done = self._bytes_total = 0
        self._bytes_done, self._bytes_partial, self._path = 0, 0.0, ""

    def run(self, records: Sequence[FileRecord]) -> WriteResult:
        """Process files in order; the catalog is committed after each window."""
        self._files_total, self._bytes_total = len(records), sum(r.size for r in records)
        self._report()
        for record in records:
            self._add(record)
            if sum(len(p.chunks) for p in self._pending) >= _WINDOW_BATCHES * self._batch:
                self._flush()
        self._flush()
        return WriteResult(
            added=tuple(self._added),
            updated=tuple(self._updated),
            removed=tuple(self._removed),
            skipped=tuple(self._skipped),
            warnings=tuple(self._warnings),
            chunks_added=self._chunks_added,
            chunks_reused=self._chunks_reused,
        )

    def _add(self, record: FileRecord) -> None:
        pending = next((p.record.path for p in self._pending if p.record.sha256 == record.sha256), None)
        twin = pending or self._twin(record)
        if twin:  # same content would give the same chunk ids: index it once
            self._index.remove_file(self._root, record.path)
            return self._done(record, Skipped(record.path, f"same content as {twin}, indexed once"))
        path, self._reading = Path(self._root, record.path), record.path
        try:
            try:
                sections, warnings = load_file_with_warnings(
                    path, record.path, self._ocr, tables=self._tables
                )
            finally:
                self._note = ""
        except LoadError as err:
            if isinstance(err.__cause__, OSError) or not path.is_file():
                # Not the content's fault (vanished, permissions): record nothing, retry next run.
                if not path.is_file() and self._index.remove_file(self._root, record.path):
                    self._removed.append(record.path)
                reason = "the file disappeared during the run" if not path.is_file() else str(err)
                return self._done(record, Skipped(record.path, reason))
            return self._skip_content(record, str(err))
        self._warnings += [Skipped(record.path, w) for w in warnings]
        try:
            chunks = chunk_sections(
                sections, self._embedder, self._size, self._overlap, file_sha256=record.sha256
            )
        except Exception as err:  # a tokenizer choking on odd text must not stop the run
            return self._done(
                record, Skipped(record.path, f"could not be chunked ({type(err).__name__}: {err})")
            )
        if not chunks:
            return self._skip_content(record, "no text to index (a scanned document without a text layer?)")
        chunks = [replace(c, origin=sections[c.section].origin) for c in chunks]
        pages = max((s.page or 0 for s in sections), default=0)
        self._pending.append(_Pending(record, tuple(chunks), pages, self._reusable(record)))

    def _reusable(self, record: FileRecord) -> dict[str, np.ndarray]:
        """The vectors a changed file's unchanged chunks keep, by ``ingest.embed.reuse_key``."""
        if not self._reuse or record.path not in self._previous:
            return {}
        return self._index.reusable_vectors(self._root, record.path)

    def _twin(self, record: FileRecord) -> str | None:
        """Where an indexed copy of this file's content is, if it is still on disk.

        A copy whose file is gone (its folder moved or deleted, and not ingested since) gives way:
        it leaves the index, with a warning, and this file is indexed in its place.
        """
        found = self._index.same_content(record.sha256, self._root, record.path)
        if found is None:
            return None
        root, path = found
        where = path if root == self._root else str(Path(root, path))
        if Path(root, path).is_file():
            return where
        self._index.remove_file(root, path)
        self._warnings.append(Skipped(record.path, f"replaces {where}, indexed before but gone from disk"))
        return None

    def _skip_content(self, record: FileRecord, reason: str) -> None:
        self._skips.append(
            FileUpdate(self._root, record.path, record.sha256, record.size, record.mtime, skip_reason=reason)
        )
        self._done(record, Skipped(record.path, reason))

    def _ocr_page(self, page: int, pages: int) -> None:
        """Told by the PDF loader before it OCRs a page: shown in the progress until the file is done."""
        self._note = f"OCR page {page}/{pages} of {Path(self._reading).name}"
        self._report()

    def _done(self, record: FileRecord, skipped: Skipped) -> None:
        self._skipped.append(skipped)
        self._files_done, self._bytes_done, self._path = (
            self._files_done + 1,
            self._bytes_done + record.size,
            record.path,
        )
        self._report()

    def _flush(self) -> None:
        """Embed the window's chunks, longest first, and write its files in one transaction."""
        vectors = self._embed()
        updates = [
            FileUpdate(
                self._root,
                p.record.path,
                p.record.sha256,
                p.record.size,
                p.record.mtime,
                p.chunks,
                vectors[i],
                p.pages,
            )
            for i, p in enumerate(self._pending)
        ]
        written = self._apply(updates + self._skips)
        for p in self._pending:
            if p.record.path in written:
                (self._updated if p.record.path in self._previous else self._added).append(p.record.path)
                self._chunks_added += len(p.chunks)
        self._files_done += len(self._pending)
        self._bytes_done += sum(p.record.size for p in self._pending)
        self._bytes_partial = 0.0
        self._path = self._pending[-1].record.path if self._pending else self._path
        self._pending, self._skips = [], []
        self._report()
        if time.monotonic() - self._last_commit > _COMMIT_SECONDS:
            self._index.commit()
            self._last_commit = time.monotonic()

    def _embed(self) -> list[np.ndarray]:
        """One (chunks, dim) array per pending file; batches are length-sorted across files."""
        dim = self._embedder.dim
        out = [np.empty((len(p.chunks), dim), dtype=np.float32) for p in self._pending]
        reused = []
        for f, p in enumerate(self._pending):  # unchanged text of a changed file: its vector stands
            for c, chunk in enumerate(p.chunks):
                vector = p.known.get(reuse_key(chunk.heading, chunk.text))
                if vector is not None and vector.shape == (dim,):
                    out[f][c] = vector
                    reused.append((f, c))
        self._chunks_reused += len(reused)
        if reused:
            self._advance(reused)
        done = set(reused)
        order = sorted(
            ((f, c) for f, p in enumerate(self._pending) for c in range(len(p.chunks)) if (f, c) not in done),
            key=lambda fc: -self._pending[fc[0]].chunks[fc[1]].tokens,
        )
        for start in range(0, len(order), self._batch):
            batch = order[start : start + self._batch]
            chunks = [self._pending[f].chunks[c] for f, c in batch]
            got = self._embedder.embed_documents([c.text for c in chunks], titles=[c.heading for c in chunks])
            if got.shape != (len(batch), dim):
                raise ModelError(
                    f"embedder {self._embedder.name} returned {got.shape}, expected ({len(batch)}, {dim})"
                )
            norms = np.linalg.norm(got, axis=1, keepdims=True)
            got = got / np.where(norms > 0, norms, 1)
            for row, (f, c) in enumerate(batch):
                out[f][c] = got[row]
            self._advance(batch)
        return out

    def _advance(self, batch: list[tuple[int, int]]) -> None:
        self._chunks_done += len(batch)
        self._bytes_partial += sum(
            self._pending[f].record.size / len(self._pending[f].chunks) for f, _ in batch
        )
        self._report()

    def _apply(self, updates: list[FileUpdate]) -> set[str]:
        """Write updates in one transaction; if ids collide, one by one, skipping the culprits."""
        if not updates:
            return set()
        try:
            self._index.apply(updates)
            return {u.path for u in updates}
        except sqlite3.IntegrityError:
            written = set()
            for u in updates:
                try:
                    self._index.apply([u])
                    written.add(u.path)
                except sqlite3.IntegrityError:
                    self._skipped.append(Skipped(u.path, "its chunks collide with another indexed file"))
            return written

    def _report(self) -> None:
        if self._progress is not None:
            done = min(self._bytes_done + int(self._bytes_partial), self._bytes_total)
            self._progress(
                Progress(
                    self._files_done,
                    self._files_total,
                    self._chunks_done,
                    done,
                    self._bytes_total,
                    self._path,
                    self._note,
                )
            )
