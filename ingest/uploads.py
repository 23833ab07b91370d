"""Saving files a user uploads (through the app or the HTTP API), safely, and indexing them.

An upload is checked before a byte is written: its type (by suffix, against the loaders' list), its
size, and its name, which is reduced to a plain file name (no folders, no ``..``, no control or
shell-special characters). Files are written only inside the uploads folder, atomically, so a
half-written file is never indexed. ``staged_uploads`` puts a batch in place only for as long as
its indexing runs: if that fails (the index is busy, say), the files that were there are put
back, so the folder and the index never disagree. ``index_uploads`` is that whole step for a batch
that passed the checks (the app's documents panel and ``docqa serve`` both call it); the indexing
itself is ``ingest.pipeline.ingest_paths``'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ingest.embed import Embedder
from ingest.errors import DocqaError
from ingest.layout import LOCK, UPLOADS
from ingest.pipeline import Progress, ingest_paths
from ingest.records import IngestReport
from ingest.settings import Settings

_MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\- ()]+")  # \w is Unicode-aware: accents stay
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class UploadRejected(DocqaError):
    """An uploaded file was refused; the message says why and what is accepted."""

    exit_code = 2


def uploads_dir(index_dir: Path) -> Path:
    """The folder uploads are saved in: ``<index>/uploads``."""
    return Path(index_dir) / UPLOADS


def clean_name(name: str) -> str:
    """Reduce a user-supplied file name to a safe, plain file name.

    Folders (``/`` or ``\\``), leading dots, control and special characters go; letters with
    accents stay; the suffix is kept and lower-cased; long names are shortened.

    >>> clean_name("../../etc/Manual de Uso.PDF")
    'Manual de Uso.pdf'

    Raises:
        UploadRejected: nothing usable is left of the name.
    """
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" ._")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")[: _MAX_NAME_CHARS - len(suffix) - 1]
    if not stem or stem.lower() in _RESERVED:
        raise UploadRejected(f"cannot use the file name {name!r}: rename the file and upload it again")
    return f"{stem}.{suffix.lower()}" if suffix else stem


def check_upload(name: str, size: int, *, max_bytes: int, suffixes: Iterable[str]) -> str:
    """Check an upload's name, type and size; return the name it will be saved under.

    Args:
        name: the name the browser sent.
        size: its size in bytes.
        max_bytes: the largest accepted size.
        suffixes: accepted suffixes with their dot, e.g. ``{".pdf", ".md"}``.

    Raises:
        UploadRejected: with the reason and the accepted types or size.
    """
    safe = clean_name(name)
    allowed = sorted(s.lower() for s in suffixes)
    suffix = Path(safe).suffix.lower()
    if suffix not in allowed:
        raise UploadRejected(f"{safe}: type {suffix or '(none)'} is not supported; use {', '.join(allowed)}")
    if size <= 0:
        raise UploadRejected(f"{safe}: the file is empty")
    if size > max_bytes:
        raise UploadRejected(
            f"{safe}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit; "
            "split the document or raise max_file_mb"
        )
    return safe


def save_upload(folder: Path, name: str, data: bytes, *, max_bytes: int, suffixes: Iterable[str]) -> Path:
    """Check an upload and write it into ``folder`` (created if needed); return its path.

    A file of the same name is replaced, so uploading a new version updates the document.

    Raises:
        UploadRejected: the upload fails the checks of ``check_upload``, or its path would
            leave ``folder`` (which the cleaned name makes impossible; checked anyway).
    """
    safe = check_upload(name, len(data), max_bytes=max_bytes, suffixes=suffixes)
    target = _target(folder, safe)
    os.replace(_write_temporary(target.parent, data), target)
    return target


@contextlib.contextmanager
def staged_uploads(folder: Path, files: Sequence[tuple[str, bytes]]) -> Iterator[list[Path]]:
    """Put uploads in place for the ``with`` block, and take them back if the block fails.

    Each file is first written in full under a temporary name; then the file it replaces (if
    any) is moved aside and the new one renamed in. If the block raises, every moved file is put
    back and every new one removed before the error goes on; if it succeeds, the old copies are
    deleted. So a failed indexing (``IndexBusy``, a crash in a loader) leaves the folder as the
    index knows it.

    Args:
        folder: the uploads folder (created if needed).
        files: (name, data) pairs whose names passed ``check_upload``.

    Yields:
        The uploads' final paths, in order.
    """
    targets = [_target(folder, name) for name, _ in files]
    temporaries = [_write_temporary(t.parent, data) for t, (_, data) in zip(targets, files, strict=True)]
    moved: list[tuple[Path, Path | None]] = []  # (target, its old file's new place or None)
    try:
        for target, temporary in zip(targets, temporaries, strict=True):
            aside = None
            if target.exists():
                aside = target.with_name(f".replaced-{secrets.token_hex(8)}.part")
                os.replace(target, aside)
            moved.append((target, aside))
            os.replace(temporary, target)
        yield targets
    except BaseException:
        for target, aside in reversed(moved):
            if aside is not None:
                os.replace(aside, target)
            else:
                target.unlink(missing_ok=True)
        for temporary in temporaries:
            Path(temporary).unlink(missing_ok=True)
        raise
    for _, aside in moved:
        if aside is not None:
            aside.unlink(missing_ok=True)


def index_uploads(
    index_dir: Path,
    files: Sequence[tuple[str, bytes]],
    embedder: Embedder,
    settings: Settings,
    *,
    progress: Callable[[Progress], None] | None = None,
) -> IngestReport:
    """Save a checked batch into ``<index>/uploads`` and index it; undo the saving if indexing fails.

    Args:
        index_dir: the index folder (created with the batch if there is none yet).
        files: (name, data) pairs whose names passed ``check_upload``.
        embedder: the embedder the index was built with.
        settings: chunking and size limits for ``ingest.pipeline.ingest_paths``.
        progress: called as the indexing goes (see ``ingest.pipeline.Progress``).

    Raises:
        IndexBusy: another writer holds the index; nothing was saved or indexed.
    """
    folder = uploads_dir(index_dir)
    with staged_uploads(folder, files) as saved:
        return ingest_paths(saved, folder, index_dir, embedder, settings, progress=progress)


def index_busy(index_dir: Path) -> bool:
    """Whether another writer holds the index's write lock (to check before touching any file)."""
    from filelock import FileLock, Timeout

    if not Path(index_dir).is_dir():
        return False
    lock = FileLock(str(Path(index_dir) / LOCK), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _target(folder: Path, name: str) -> Path:
    """``folder / name``, refusing a name that would leave the folder (checked names never do)."""
    folder = Path(folder).resolve()
    target = (folder / name).resolve()
    if target.parent != folder:
        raise UploadRejected(f"{name!r}: refused, the name points outside the uploads folder")
    return target


def _write_temporary(folder: Path, data: bytes) -> Path:
    """Write ``data`` to a new hidden ``.upload-*.part`` file in ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def delete_upload(folder: Path, path: Path) -> bool:
    """Delete an uploaded file if ``path`` lies inside ``folder``; return whether one was deleted.

    Documents indexed from elsewhere are never touched: only their index entries are removed.
    """
    folder = Path(folder).resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        return False
    target.unlink()
    return True
