"""Limits on ZIP-based documents (.docx, .epub), checked before any parser opens them.

A few megabytes of ZIP can expand to gigabytes (a "zip bomb"), and python-docx and ebooklib
read whole members into memory. ``check_archive`` reads the central directory (member count,
declared sizes, compression ratios), then decompresses every member as a stream, counting the
bytes it really yields (a forged header can declare less than the data holds), and stops at the
first limit crossed. Nested ZIP members are checked the same way, one level deep, on the same
budget. Memory stays at one read block, whatever the archive holds.

It raises ``LoadError``, so the ingestion skips the file with the reason. It does not parse the
documents and does not judge what the members hold.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ingest.errors import LoadError

_BLOCK = 1 << 20  # bytes decompressed at a time
_ZIP_MAGIC = b"PK\x03\x04"
_END_MAGIC = b"PK\x05\x06"
_END_RECORD = struct.Struct("<4s4H2LH")  # ..., entries in total, directory size, offset, comment size
_MAX_END_RECORD = _END_RECORD.size + 0xFFFF  # the record is followed by a comment of up to 64 KB
_MAX_ENTRY_BYTES = 1024  # a directory entry: 46 bytes plus its name and extras


@dataclass(frozen=True)
class ArchiveLimits:
    """What a document archive may hold.

    The defaults leave room for large real manuals (a 1,000-page .docx expands to some tens of
    MB) while keeping a hostile file far below the memory of a small machine.
    """

    # All members together, decompressed, nested archives included.
    max_total_bytes: int = 256 * 1024 * 1024
    # Members in the archive (a book with an image per page has a few thousand).
    max_members: int = 10_000
    # Expanded / compressed size of one member; XML compresses 5-20x, a bomb about 1,000x.
    max_ratio: float = 100.0
    # Members smaller than this are not held to the ratio (tiny repetitive files compress well).
    ratio_grace_bytes: int = 1024 * 1024
    # Archives inside the archive: 1 allows an embedded spreadsheet, not an archive inside it.
    max_nesting: int = 1


DEFAULT_LIMITS = ArchiveLimits()


def check_archive(path: Path, kind: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Raise ``LoadError`` when the ZIP at ``path`` crosses a limit; return quietly otherwise.

    Args:
        path: the document.
        kind: what to call it in messages, e.g. ".docx" or "EPUB".

    Raises:
        LoadError: not a ZIP archive, or over a limit ("expands to more than 256 MB ...").
    """
    try:
        with path.open("rb") as file:
            _check(file, kind, limits, depth=0, budget=[limits.max_total_bytes])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        raise LoadError(f"not a readable {kind} ({err}); check that the file is complete") from err


def _check(file: IO[bytes], kind: str, limits: ArchiveLimits, depth: int, budget: list[int]) -> None:
    """Check one archive; ``budget`` is the expanded bytes left for it and every archive in it."""
    _check_directory_size(file, kind, limits)
    with zipfile.ZipFile(file) as archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise _too_big(kind, f"holds {len(members):,} files (limit {limits.max_members:,})")
        declared = sum(m.file_size for m in members)
        if declared > budget[0]:
            raise _too_big(kind, f"expands to {_mb(declared)} (limit {_mb(limits.max_total_bytes)})")
        for member in members:
            if member.is_dir():
                continue
            _check_ratio(member.filename, member.file_size, member.compress_size, kind, limits)
            nested = _stream(archive, member, kind, limits, budget, keep=depth < limits.max_nesting)
            if nested is None:
                continue
            if depth + 1 > limits.max_nesting:
                raise _too_big(
                    kind, f"nests archives more than {limits.max_nesting} deep ({member.filename})"
                )
            _check(nested, kind, limits, depth + 1, budget)


def _check_directory_size(file: IO[bytes], kind: str, limits: ArchiveLimits) -> None:
    """Refuse a central directory too large for ``max_members`` before ``zipfile`` reads it.

    ``zipfile`` builds an object per entry of the whole directory, whatever its end record says
    the count is; 64 MB of directory would be a million entries. This reads the end record only:
    at most ``max_members`` entries and ``max_members`` KB of directory (a ZIP64 record, needed
    only past 65,535 members or 4 GB, counts as too many).
    """
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - _MAX_END_RECORD))
    tail = file.read()
    at = tail.rfind(_END_MAGIC)
    if at < 0 or len(tail) - at < _END_RECORD.size:
        return  # not a ZIP: zipfile says so in its own words
    *_, entries, directory_bytes, _, _ = _END_RECORD.unpack_from(tail, at)
    most_bytes = limits.max_members * _MAX_ENTRY_BYTES
    if entries > limits.max_members or directory_bytes > most_bytes:
        shown = (
            f"{entries:,} files" if directory_bytes <= most_bytes else f"a {directory_bytes:,}-byte file list"
        )
        raise _too_big(kind, f"declares {shown} (limit {limits.max_members:,} files)")


def _stream(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    kind: str,
    limits: ArchiveLimits,
    budget: list[int],
    keep: bool,
) -> IO[bytes] | None:
    """Decompress ``member`` block by block, charging its real size to ``budget``.

    Returns the member's bytes when it is itself a ZIP archive (kept only when ``keep``: a ZIP
    one level too deep returns an empty stream, which the caller refuses), else None.
    """
    seen = 0
    head = b""
    kept = io.BytesIO() if keep else None
    with archive.open(member) as stream:
        while block := stream.read(_BLOCK):
            seen += len(block)
            budget[0] -= len(block)
            if budget[0] < 0:
                raise _too_big(kind, f"expands to more than {_mb(limits.max_total_bytes)}")
            if seen > member.file_size:  # zipfile stops at the declared size; checked all the same
                raise _too_big(kind, f"{member.filename} holds more data than its header says")
            _check_ratio(member.filename, seen, member.compress_size, kind, limits)
            if len(head) < len(_ZIP_MAGIC):
                head += block[: len(_ZIP_MAGIC)]
            if kept is not None and head.startswith(_ZIP_MAGIC):
                kept.write(block)
    if not head.startswith(_ZIP_MAGIC):
        return None
    if kept is None:
        return io.BytesIO()
    kept.seek(0)
    return kept


def _check_ratio(name: str, expanded: int, compressed: int, kind: str, limits: ArchiveLimits) -> None:
    if expanded > limits.ratio_grace_bytes and expanded > limits.max_ratio * max(compressed, 1):
        ratio = expanded / max(compressed, 1)
        raise _too_big(kind, f"{name} is compressed {ratio:,.0f} to 1 (limit {limits.max_ratio:g})")


def _too_big(kind: str, what: str) -> LoadError:
    return LoadError(f"refused: this {kind} {what} (a zip bomb?); split the document if it is real")


def _mb(size: int) -> str:
    """Whole megabytes, e.g. ``_mb(3 * 1024 * 1024) == '3 MB'``."""
    return f"{size / (1024 * 1024):,.0f} MB"
