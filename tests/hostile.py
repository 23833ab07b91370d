"""Hostile inputs built by code, small on disk: zip bombs and giant PDF pages.

``deflated_zeros`` makes a raw deflate stream of N MiB of zeros in milliseconds: one MiB is
compressed once, ended with a full flush (so it refers to nothing before it), and repeated.
``write_zip`` writes members given as already-deflated data, so a test can make a 1 MB file that
declares (and really holds) a gigabyte without ever holding the gigabyte itself.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass(frozen=True)
class Member:
    """One ZIP member: its raw deflate data, its expanded size and CRC-32."""

    name: str
    deflated: bytes
    size: int
    crc: int


def member(name: str, data: bytes) -> Member:
    """A member holding ``data``, deflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Member(name, compressor.compress(data) + compressor.flush(), len(data), zlib.crc32(data))


def zeros_member(name: str, mebibytes: int, declared: int | None = None) -> Member:
    """A member of ``mebibytes`` MiB of zeros (about 1 KB deflated per MiB).

    ``declared`` forges the expanded size its headers state (the data stays the same).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    zero = bytes(MIB)
    for _ in range(mebibytes):
        crc = zlib.crc32(zero, crc)
    size = mebibytes * MIB
    return Member(name, block * mebibytes + b"\x03\x00", size if declared is None else declared, crc)


def write_zip(path: Path, members: list[Member]) -> Path:
    """Write ``members`` as a ZIP file (deflate, no ZIP64) at ``path``."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        name = m.name.encode()
        out.write(
            struct.pack(
                "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, m.crc, len(m.deflated), m.size, len(name), 0
            )
        )
        out.write(name + m.deflated)
        central.append(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                8,
                0,
                0,
                m.crc,
                len(m.deflated),
                m.size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(
        struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0)
    )
    path.write_bytes(out.getvalue())
    return path


def docx_members(title: str = "A small manual") -> list[Member]:
    """The members of a real one-paragraph .docx made by python-docx."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    document.add_paragraph("Connect the red wire to input A1.")
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return [member(info.filename, archive.read(info)) for info in archive.infolist()]


def bomb_docx(path: Path, mebibytes: int = 1100) -> Path:
    """A valid .docx plus one member of ``mebibytes`` MiB of zeros: ~1 MB on disk."""
    return write_zip(path, [*docx_members(), zeros_member("word/media/image1.bin", mebibytes)])


def giant_page_pdf(path: Path, points: float = 14400.0) -> Path:
    """A one-page PDF whose page is ``points`` x ``points`` (14400 pt is PDF's largest, 5 m)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    document.new_page(points, points)
    document.save(path)
    document.close()
    return path
