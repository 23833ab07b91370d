"""EPUB loader: the book's chapters in reading (spine) order, split at headings like HTML.

Each chapter document is split by ``ingest.load_html.html_sections``, so heading paths start at
the chapter's own top heading; text before it is headed by the book's title. Non-linear spine
items (notes, alternative copies) are left out, as a reader's normal flow leaves them out.
DRM-encrypted books cannot be read.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import ebooklib
from ebooklib import epub

from ingest.archive import check_archive
from ingest.errors import LoadError
from ingest.load_html import html_sections
from ingest.records import Section

_ENCRYPTED_TEXT = re.compile(rb"URI=[\"'][^\"']+\.x?html?[\"']", re.IGNORECASE)


def load_epub(path: Path, source: str, *, tables: bool = True) -> tuple[list[Section], list[str]]:
    """Read the linear spine documents of an EPUB into heading sections.

    Returns:
        The sections in reading order, and a warning for each chapter that could not be parsed.

    Raises:
        LoadError: not a readable EPUB, DRM-protected, or no text in any chapter.
    """
    check_archive(path, "EPUB")  # before ebooklib reads every member into memory
    _refuse_drm(path)
    book = _read(path)
    sections: list[Section] = []
    problems: list[str] = []
    seen: set[str] = set()
    titles = book.get_metadata("DC", "title")
    title = " ".join(str(titles[0][0]).split()) if titles else ""  # heads text before a heading
    for idref, linear in book.spine:
        if idref in seen or str(linear).lower() == "no":
            continue
        seen.add(idref)
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        try:
            sections.extend(html_sections(item.get_content(), source, title, tables=tables))
        except Exception as err:  # one broken chapter should not lose the book
            problems.append(f"chapter {item.get_name()} could not be parsed ({err}); skipped")
    if not sections:
        raise LoadError("no text in any chapter of this EPUB")
    return sections, problems


def _read(path: Path) -> epub.EpubBook:
    with warnings.catch_warnings():  # ebooklib warns about its own future defaults
        warnings.simplefilter("ignore")
        try:
            return epub.read_epub(str(path), options={"ignore_ncx": True})
        except Exception as err:  # BadZipFile, KeyError, EpubException, lxml errors
            reason = f"{type(err).__name__}: {err}".strip(": ")
            raise LoadError(f"not a readable EPUB ({reason}); check that the file is complete") from err


def _refuse_drm(path: Path) -> None:
    """Raise when META-INF/encryption.xml encrypts chapters (font obfuscation alone is fine)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "META-INF/encryption.xml" not in archive.namelist():
                return
            manifest = archive.read("META-INF/encryption.xml")
    except (zipfile.BadZipFile, OSError, KeyError) as err:
        raise LoadError(f"not a readable EPUB ({err}); check that the file is complete") from err
    if _ENCRYPTED_TEXT.search(manifest):
        raise LoadError("DRM-protected EPUB; only DRM-free books can be indexed")
