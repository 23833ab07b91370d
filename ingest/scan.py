"""Find the files to index under a folder, with their content hashes.

``scan_folder`` walks a folder in sorted order and yields a ``FileRecord`` for each file docqa
can read, or a ``Skipped`` with the reason for one it cannot (unsupported type, empty, too large,
unreadable, broken link, symbolic link loop). Hidden files and folders (``.git``, ``.DS_Store``)
are passed over silently, and so are those that match an ignore pattern (``.docqaignore``).
A linked folder is followed once: a folder already seen (a loop, or a second link to it) is
skipped with the reason. Hashes are streamed, and ``known`` lets the caller
skip hashing a file whose size and mtime did not change since the last run.

It does not parse files (``ingest.load`` does).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

from ingest.records import FileRecord, Skipped

# (relative path, size, mtime) -> the sha256 recorded for exactly that size and mtime, or None.
Known = Callable[[str, int, float], str | None]
_BLOCK = 1 << 20
IGNORE_FILE = ".docqaignore"


def scan_folder(
    folder: Path,
    max_file_bytes: int,
    *,
    suffixes: Collection[str] | None = None,
    known: Known | None = None,
    exclude: Iterable[Path] = (),
    ignore: Sequence[str] = (),
) -> Iterator[FileRecord | Skipped]:
    """Walk ``folder``; ``FileRecord.path`` and ``Skipped.path`` are relative POSIX paths.

    Args:
        folder: the folder to walk.
        max_file_bytes: larger files are skipped.
        suffixes: file types to index, lower case with the dot (default: what ``ingest.load`` reads).
        known: returns a file's previous hash when its size and mtime are unchanged.
        exclude: folders to pass over silently (the index folder, when it lies inside).
        ignore: patterns of files and folders to pass over silently (see ``is_ignored``).
    """
    suffixes = _suffixes(suffixes)
    seen = {_key(os.stat(p)) for p in exclude if os.path.isdir(p)}
    seen.add(_key(os.stat(folder)))
    stack = [(os.fspath(folder), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            yield Skipped(prefix.rstrip("/") or ".", f"cannot list folder: {_why(err)}")
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            if not _is_utf8(entry.name):
                yield _bad_name(rel)
                continue
            try:
                info = os.stat(entry.path)
            except OSError as err:
                yield Skipped(rel, _stat_failure(entry, err))
                continue
            if ignore and is_ignored(rel, stat.S_ISDIR(info.st_mode), ignore):
                continue
            if stat.S_ISDIR(info.st_mode):
                if _key(info) in seen:
                    if entry.is_symlink():
                        target = os.readlink(entry.path)
                        yield Skipped(
                            rel, f"symbolic link loop: points to a folder already scanned ({target})"
                        )
                    continue
                seen.add(_key(info))
                subfolders.append((entry.path, rel + "/"))
            else:
                yield _check_file(entry.path, rel, info, max_file_bytes, suffixes, known)
        stack.extend(reversed(subfolders))


def read_ignore(folder: Path) -> list[str]:
    """The patterns in ``folder/.docqaignore`` (none when there is no such file).

    One pattern per line; blank lines and lines starting with ``#`` are left out.
    """
    try:
        text = (Path(folder) / IGNORE_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(rel: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    """Whether the relative POSIX path ``rel`` matches one of ``patterns`` (gitignore-like).

    A pattern ending in ``/`` matches folders only; one with another ``/`` matches the whole
    path from the scanned folder; any other matches the name at any depth. ``*``, ``?`` and
    ``[...]`` are shell wildcards.

    >>> is_ignored("docs/README.md", False, ["README.md"]), is_ignored("a/b.pdf", False, ["b/*.pdf"])
    (True, False)
    >>> is_ignored("drafts", True, ["drafts/"]), is_ignored("drafts", False, ["drafts/"])
    (True, False)
    """
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def scan_files(
    root: Path,
    paths: Iterable[Path],
    max_file_bytes: int,
    *,
    suffixes: Collection[str] | None = None,
    known: Known | None = None,
) -> Iterator[FileRecord | Skipped]:
    """Like ``scan_folder`` for given files under ``root`` (absolute, or relative to ``root``)."""
    suffixes = _suffixes(suffixes)
    real_root = Path(root).resolve()
    for path in paths:
        full = Path(root, path)
        try:
            rel = full.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            try:
                rel = full.resolve().relative_to(real_root).as_posix()
            except (ValueError, OSError):
                yield Skipped(str(path), f"not inside {root}; copy it there first")
                continue
        if not _is_utf8(rel):
            yield _bad_name(rel)
            continue
        try:
            info = os.stat(full)
        except OSError as err:
            yield Skipped(rel, _why(err))
            continue
        yield _check_file(os.fspath(full), rel, info, max_file_bytes, suffixes, known)


def _check_file(
    path: str,
    rel: str,
    info: os.stat_result,
    max_file_bytes: int,
    suffixes: Collection[str],
    known: Known | None,
) -> FileRecord | Skipped:
    """The record of one file, or why it is skipped; hashes it unless ``known`` has its hash."""
    suffix = os.path.splitext(rel)[1].lower()
    if not stat.S_ISREG(info.st_mode):
        return Skipped(rel, "not a regular file (device, socket or pipe)")
    if suffix not in suffixes:
        return Skipped(rel, f"unsupported file type '{suffix or os.path.basename(rel)}'")
    if info.st_size == 0:
        return Skipped(rel, "empty file (0 bytes)")
    if info.st_size > max_file_bytes:
        return Skipped(
            rel,
            f"too large: {info.st_size / 1e6:.1f} MB, over the {max_file_bytes / 1e6:g} MB limit "
            "(raise max_file_mb in docqa.toml or DOCQA_MAX_FILE_MB)",
        )
    sha = known(rel, info.st_size, info.st_mtime) if known else None
    if sha is None:
        try:
            sha = file_sha256(path)
        except OSError as err:
            return Skipped(rel, _why(err))
    return FileRecord(path=rel, sha256=sha, size=info.st_size, mtime=info.st_mtime)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _suffixes(suffixes: Collection[str] | None) -> frozenset[str]:
    if suffixes is None:
        from ingest.load import SUPPORTED_SUFFIXES

        suffixes = SUPPORTED_SUFFIXES
    return frozenset(s.lower() for s in suffixes)


def _key(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _is_utf8(name: str) -> bool:
    """Whether a name read from the disk is valid UTF-8 (Python keeps bad bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_name(rel: str) -> Skipped:
    """Why a file or folder whose name is not UTF-8 is skipped (the catalog stores names as UTF-8).

    >>> _bad_name("docs/bad-\\udcff.md").path
    'docs/bad-\\\\xff.md'
    """
    shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return Skipped(shown, "its name is not valid UTF-8 (shown with \\x escapes); rename it")


def _stat_failure(entry: os.DirEntry, err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "symbolic link loop: the link points back to itself"
    if err.errno == errno.ENOENT and entry.is_symlink():
        return f"broken symbolic link (to {os.readlink(entry.path)})"
    return _why(err)


def _why(err: OSError) -> str:
    """A person's reason for an OS error."""
    if err.errno == errno.ENOENT:
        return "the file disappeared during the run"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: docqa cannot read it (check its permissions)"
    return f"cannot read: {err.strerror or err}"
