"""Plain-text loader (.txt, .rst): the whole file as one section, in whatever encoding it is in.

``read_text`` decodes bytes of unknown encoding (UTF-8, UTF-16 with a BOM, Latin-1,
Windows-1252, ...) and refuses binary data; the Markdown loader reads through it too. The file
is not split here: the chunker splits long sections.
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from charset_normalizer import from_bytes

from ingest.errors import LoadError
from ingest.records import Section

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_MAX_CONTROL_RATIO = 0.01  # text has almost no control characters besides line ends and tabs
_ALLOWED_CONTROL = set("\n\r\t\f\v")


def load_text(path: Path, source: str) -> tuple[list[Section], list[str]]:
    """Read a text file as one section with no heading.

    Raises:
        LoadError: the file is binary or holds only whitespace.
    """
    text = read_text(path)
    if not text.strip():
        raise LoadError("the file holds only whitespace")
    return [Section(text.strip(), source)], []


def read_text(path: Path) -> str:
    """Decode a text file of unknown encoding, with "\\n" line ends.

    Raises:
        LoadError: the bytes are not text in any encoding ("binary data, not text").
    """
    text = _decode(path.read_bytes())
    if text is None or _looks_binary(text):
        raise LoadError("binary data, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str | None:
    """Decode by BOM, then as UTF-8, then by charset-normalizer's guess; None if binary.

    >>> _decode("Año".encode("cp1252"))
    'Año'
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:  # NUL bytes without a UTF-16/32 BOM: binary
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Manuals in docqa's languages use Western code pages; charset-normalizer alone sometimes
    # picks a look-alike ("Año" as Big5), so try those first, then let it choose among all.
    best = from_bytes(data, cp_isolation=list(_WESTERN)).best() or from_bytes(data).best()
    return str(best) if best is not None else None


def _looks_binary(text: str) -> bool:
    """True when more than 1% of the characters are control characters other than line ends.

    >>> _looks_binary("ok\\n\\tfine"), _looks_binary("\\x01\\x02\\x03 x")
    (False, True)
    """
    sample = text[:65536]
    control = sum(
        1 for ch in sample if ch not in _ALLOWED_CONTROL and unicodedata.category(ch) in ("Cc", "Cs")
    )
    return control > _MAX_CONTROL_RATIO * max(len(sample), 1)
