"""Load one file into sections: the first stage of ingestion.

``load_file`` picks a loader by the file's suffix (PDF, HTML, EPUB, Markdown, text, Word),
removes control characters from every section's text and heading (``ingest.control``: whatever
the format, no escape sequence reaches the index, the prompt or a terminal) and permalink signs
from the ends of each heading's titles ("FAQ ¶ > Is it full-duplex? ¶" becomes "FAQ > Is it
full-duplex?"), then sets each section's language. Anything that keeps a file from being indexed
(empty, corrupt, encrypted, scanned, binary, unsupported) raises ``LoadError`` with a reason a
person can act on; no library exception escapes. Files are read one at a time and never written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ingest.control import strip_control
from ingest.errors import LoadError
from ingest.lang import detect_language
from ingest.load_docx import load_docx
from ingest.load_epub import load_epub
from ingest.load_html import load_html
from ingest.load_markdown import load_markdown
from ingest.load_pdf import load_pdf
from ingest.load_text import load_text
from ingest.ocr import PageOcr
from ingest.records import Section

Loader = Callable[[Path, str], tuple[list[Section], list[str]]]

_LOADERS: dict[str, Loader] = {
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".xhtml": load_html,
    ".epub": load_epub,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".rst": load_text,
    ".docx": load_docx,
}
_WITH_TABLES = {load_pdf, load_html, load_epub, load_docx}  # the loaders that take ``tables``
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_LOADERS)
# Bumped when a loader's output changes for the same file, so the next ``docqa ingest`` reads every
# file again (unchanged chunk texts keep their vectors). 2: PDF tables of contents left out.
# 3: control characters removed from every format's text and headings; permalink signs from headings.
# 4: scanned PDF pages read by OCR (``ingest.ocr``), their chunks marked ``origin = "ocr"``; and
# (same release, one bump) tables read as Markdown tables (``ingest.tables``). 5: no reader
# changed, the chunker did: a table's pieces are half a chunk and repeat the line before the
# table (``ingest.chunk``); the same files give other chunks, so they are read again once.
LOADER_VERSION = 5
"""Lower-case suffixes ``load_file`` reads; matching is case-insensitive."""

_PATH_SEPARATOR = " > "  # between a heading path's titles, in every loader
# Permalink signs that themselves link to a heading (Sphinx, MkDocs, GitHub, W3C specs). These are
# never part of a word (U+FE0E/F pick an emoji's style: "⚓️")...
_ANCHOR_SIGNS = "¶⁋❡🔗⚓\ufe0e\ufe0f"
# ...these are, so they go only as a word of their own.
_ANCHOR_WORDS = frozenset("#§")
_SIGN_CHARS = _ANCHOR_WORDS | frozenset(_ANCHOR_SIGNS)
_WORD = re.compile(r"\S+")
_MIN_DETECT_CHARS = 200  # shorter sections take the document's language: too little to judge
# Every chunk of a section stores its heading: a 20 MB heading line over a long body would be
# stored once per chunk (gigabytes). Real heading paths are far shorter than this.
_MAX_HEADING_CHARS = 500


def load_file(path: Path, source: str) -> list[Section]:
    """Read a file into sections, dropping warnings; see ``load_file_with_warnings``."""
    sections, _ = load_file_with_warnings(path, source)
    return sections


def load_file_with_warnings(
    path: Path, source: str, ocr: PageOcr | None = None, *, tables: bool = True
) -> tuple[list[Section], list[str]]:
    """Read a file into sections, with warnings about parts that could not be read.

    Args:
        path: the file to read.
        source: what to store as each section's ``source`` (the path relative to the folder).
        ocr: reads PDF pages without a text layer (``ingest.ocr.load_ocr``); None skips them.
        tables: PDF, HTML, EPUB and Word tables as Markdown tables (``ingest.tables``); False
            reads them as before (``Settings.tables = "off"``).

    Returns:
        The sections in document order (never empty), each with ``lang`` set, and warnings
        such as "page 3 has no text layer (scanned?)".

    Raises:
        LoadError: the file cannot be indexed; ``str(err)`` says why and what to do.
    """
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        supported = " ".join(sorted(SUPPORTED_SUFFIXES))
        raise LoadError(f"unsupported file type '{suffix or path.name}'; supported: {supported}")
    try:
        if not path.is_file():
            raise LoadError("not a regular file")
        if path.stat().st_size == 0:
            raise LoadError("empty file (0 bytes)")
        options = {"tables": tables} if loader in _WITH_TABLES else {}
        if loader is load_pdf:
            sections, warnings = load_pdf(path, source, ocr, **options)
        else:
            sections, warnings = loader(path, source, **options)
    except LoadError:
        raise
    except OSError as err:
        raise LoadError(f"cannot read the file ({err.strerror or err}); check its permissions") from err
    except Exception as err:  # a library choking on malformed input must not stop the ingestion
        raise LoadError(f"could not parse this {suffix[1:]} file ({type(err).__name__}: {err})") from err
    return _with_languages(_short_headings(_without_anchor_signs(_without_control(sections)))), warnings


def _without_control(sections: list[Section]) -> list[Section]:
    """Each section's text and heading through ``strip_control``; sections left blank go.

    Raises:
        LoadError: nothing but control characters and spaces.
    """
    cleaned = [replace(s, text=strip_control(s.text), heading=strip_control(s.heading)) for s in sections]
    kept = [s for s in cleaned if s.text.strip()]
    if not kept:
        raise LoadError("no text, only control characters")
    return kept


def _without_anchor_signs(sections: list[Section]) -> list[Section]:
    """Each heading path's titles without the permalink signs at their ends."""
    return [replace(s, heading=_heading_without_anchors(s.heading)) if s.heading else s for s in sections]


def _heading_without_anchors(heading: str) -> str:
    """A heading path with permalink signs (Sphinx's "¶", "§", "#", "🔗", "⚓") off each title's ends.

    Signs never found in words go wherever they touch an end; "#" and "§" only as a word of their
    own ("C#" and "§5" stay). A title left empty leaves the path.

    >>> _heading_without_anchors("FAQ ¶ > Is HackRF full-duplex?¶")
    'FAQ > Is HackRF full-duplex?'
    >>> _heading_without_anchors("# 🔗 Install > § 2 Using C# > ⚓️")
    'Install > 2 Using C#'
    """
    titles = (_title_without_anchors(title) for title in heading.split(_PATH_SEPARATOR))
    return _PATH_SEPARATOR.join(title for title in titles if title)


def _title_without_anchors(title: str) -> str:
    """One title without the signs at its ends, in one pass (a hostile title can be long).

    >>> _title_without_anchors("¶ # Setup¶ ⚓️ §")
    'Setup'
    """
    words = [m.span() for m in _WORD.finditer(title) if not set(m.group()) <= _SIGN_CHARS]
    if not words:
        return ""
    return title[words[0][0] : words[-1][1]].lstrip(_ANCHOR_SIGNS).rstrip(_ANCHOR_SIGNS)


def _short_headings(sections: list[Section]) -> list[Section]:
    """Headings longer than ``_MAX_HEADING_CHARS`` cut there, ending in "…"."""
    return [
        replace(s, heading=s.heading[: _MAX_HEADING_CHARS - 1].rstrip() + "…")
        if len(s.heading) > _MAX_HEADING_CHARS
        else s
        for s in sections
    ]


def _with_languages(sections: list[Section]) -> list[Section]:
    """Detect each long section's language; short ones take the document's main language.

    The main language is the one with the most text among the long sections, or that of all
    the text together when every section is short.
    """
    detected = [detect_language(s.text) if len(s.text) >= _MIN_DETECT_CHARS else "und" for s in sections]
    weights: Counter[str] = Counter()
    for section, lang in zip(sections, detected, strict=True):
        if lang != "und":
            weights[lang] += len(section.text)
    if weights:
        main = weights.most_common(1)[0][0]
    else:
        main = detect_language("\n".join(s.text for s in sections[:50]))
    return [
        replace(section, lang=lang if lang != "und" else main)
        for section, lang in zip(sections, detected, strict=True)
    ]
