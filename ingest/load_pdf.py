"""PDF loader: one section per page with text, headed by the outline (bookmarks) when there is one.

Reads the text layer with pdfium. A page without text that shows an image (a scan) is read by
OCR when an engine is given (``ingest.ocr``; its section has ``origin="ocr"``), else reported as a
warning; a blank page is skipped quietly, table-of-contents pages are left out (with one warning
naming them), and a PDF with no text at all is refused. Languages are set by ``ingest.load``, not
here. pdfium is not thread-safe: load PDFs from one thread per process.
"""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingest.errors import LoadError
from ingest.ocr import OcrFailed, OcrUnavailable, PageOcr, ocr_page
from ingest.records import Section
from ingest.tables import PdfTableReader, count_paths

_MIN_ALNUM = 3  # a page with fewer letters or digits than this has no usable text layer
_SOFT_HYPHENS = re.compile(r"[\x02\ufffe\u00ad]\n?")  # pdfium marks hyphenated line breaks
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# A table-of-contents line: a title, dot leaders, a page number ("2.15 Lemon cell . . . . 27").
_MIN_LEADER_DOTS = 4
_MIN_LEADER_LINES = 5


def load_pdf(
    path: Path, source: str, ocr: PageOcr | None = None, *, tables: bool = True
) -> tuple[list[Section], list[str]]:
    """Read every page's text, with the outline's heading path for each page.

    Args:
        path: the PDF.
        source: each section's ``source``.
        ocr: reads the pages without a text layer that show an image (scans); None: they are
            skipped with a warning, as they are when the engine is missing.
        tables: ruled tables become Markdown tables (``ingest.tables``); False keeps their cells
            as a stream of text, as before.

    Returns:
        Sections for the pages with text (``page`` is 1-based) and one warning per page without.

    Raises:
        LoadError: the PDF is encrypted, unreadable, has no pages or no text on any page.
    """
    doc = _open(path)
    reader = PdfTableReader(path) if tables else None
    try:
        headings = _page_headings(doc)
        sections: list[Section] = []
        warnings: list[str] = []
        contents: list[int] = []  # pages that are a table of contents
        unread: list[int] = []  # scanned pages OCR could not read
        ocr_problem = ""  # why: once the engine is found missing, it is not tried again
        for index in range(len(doc)):
            try:
                text, has_images = _page_text(doc, index, reader)
            except pdfium.PdfiumError as err:
                warnings.append(f"page {index + 1} could not be read ({err}); skipped")
                continue
            if not text and has_images and ocr is not None and not ocr_problem:
                try:
                    text = _ocr_text(doc, index, ocr)
                except OcrUnavailable as err:
                    ocr_problem = str(err)
                except (OcrFailed, pdfium.PdfiumError) as err:
                    warnings.append(f"page {index + 1} has no text layer and OCR could not read it ({err})")
                    continue
                if text and is_contents(text):
                    contents.append(index + 1)
                    continue
                if text:
                    heading = headings.get(index, "")
                    sections.append(Section(text, source, page=index + 1, heading=heading, origin="ocr"))
                    continue
            if not text:
                if has_images and ocr is not None:
                    unread.append(index + 1)
                elif has_images:  # a blank page (no images) is skipped without a warning
                    warnings.append(f"page {index + 1} has no text layer (scanned?)")
                continue
            if is_contents(text):
                contents.append(index + 1)
                continue
            sections.append(Section(text, source, page=index + 1, heading=headings.get(index, "")))
    finally:
        doc.close()
        if reader is not None:
            reader.close()
    if not sections and ocr_problem:
        raise LoadError(f"no text layer on any page (scanned PDF?) and OCR is unavailable: {ocr_problem}")
    if not sections:
        fix = "OCR found no text either" if ocr is not None else 'OCR it first (ocr = "tesseract")'
        raise LoadError(f"no text layer on any page (scanned PDF?); {fix}")
    if unread:
        why = f"OCR is unavailable: {ocr_problem}" if ocr_problem else "OCR found no text"
        warnings.append(
            f"no text layer on page{'s' if len(unread) > 1 else ''} {_pages(unread)} (scanned?); {why}"
        )
    if contents:
        pages = ", ".join(map(str, contents))
        warnings.append(f"table of contents not indexed (page{'s' if len(contents) > 1 else ''} {pages})")
    return sections, warnings


def _ocr_text(doc: pdfium.PdfDocument, index: int, ocr: PageOcr) -> str:
    """The cleaned OCR text of a scanned page ("" if it reads as no text); one page in memory."""
    if ocr.progress is not None:
        ocr.progress(index + 1, len(doc))
    page = doc[index]
    try:
        text = _clean(ocr_page(ocr.engine, page, ocr.dpi))
    finally:
        page.close()
    return text if sum(ch.isalnum() for ch in text) >= _MIN_ALNUM else ""


def _pages(numbers: list[int], most: int = 20) -> str:
    """Page numbers for a warning, the first ``most`` of them.

    >>> _pages([3, 4, 9]), _pages(list(range(1, 30)), most=3)
    ('3, 4, 9', '1, 2, 3 and 26 more')
    """
    shown = ", ".join(map(str, numbers[:most]))
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


def is_contents(text: str) -> bool:
    """Whether a page is a table of contents: most of its lines end in dot leaders and a number.

    Such pages repeat every heading of the manual and answer nothing ("2.15 Lemon cell . . . 27"),
    yet they match every question's words: indexed, they crowd out the pages they point to.

    >>> is_contents("Contents\\n" + "\\n".join(f"{i} Topic {i} . . . . . . {i + 3}" for i in range(8)))
    True
    >>> is_contents("Connect PV1 to A1. Set PV1 to 2 V.\\nThe voltage is shown . . . . . in 5")
    False
    """
    lines = [line for line in text.split("\n") if line.strip()]
    leaders = sum(1 for line in lines if _is_leader_line(line))
    return leaders >= _MIN_LEADER_LINES and leaders >= 0.4 * len(lines)


def _is_leader_line(line: str) -> bool:
    """Whether ``line`` ends in four or more dot leaders and a number; linear in its length.

    The regex it replaces, ``(?:\\.\\s*){4,}\\d+\\s*$``, backtracked quadratically: a page with
    long lines of dots and spaces took minutes.

    >>> _is_leader_line("2.15 Lemon cell . . . . 27"), _is_leader_line("Total ....... 1.5 V")
    (True, False)
    """
    end = len(line.rstrip())
    start = end
    while start > 0 and line[start - 1].isdecimal():
        start -= 1
    if start == end:
        return False
    dots = 0
    while start > 0 and (line[start - 1] == "." or line[start - 1].isspace()):
        dots += line[start - 1] == "."
        start -= 1
    return dots >= _MIN_LEADER_DOTS


def _open(path: Path) -> pdfium.PdfDocument:
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as err:
        if err.err_code == pdfium_c.FPDF_ERR_FILE:
            path.open("rb").close()  # raise the real OSError (permissions...) for the caller
        if err.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise LoadError("encrypted PDF; decrypt it first") from err
        detail = str(err).rstrip(".")
        raise LoadError(f"not a readable PDF: {detail}; check that the file is complete") from err
    if len(doc) == 0:
        doc.close()
        raise LoadError("PDF has no pages")
    return doc


def _page_text(doc: pdfium.PdfDocument, index: int, tables: PdfTableReader | None) -> tuple[str, bool]:
    """A page's cleaned text (tables as Markdown when ``tables`` is given), and whether a page
    without text shows images (a scan)."""
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
            if tables is not None:
                text = tables.page_text(index, count_paths(page), textpage, text)
            text = _clean(text)
        finally:
            textpage.close()
        if sum(ch.isalnum() for ch in text) < _MIN_ALNUM:
            text = ""
        has_images = not text and any(
            obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE for obj in page.get_objects(max_depth=2)
        )
        return text, has_images
    finally:
        page.close()


def _clean(text: str) -> str:
    """Normalise line ends and spaces, join hyphenated words, keep lines and paragraphs.

    >>> _clean("ACCEL\\x02ERATOR  centre \\r\\n\\r\\n\\r\\nnext")
    'ACCELERATOR centre\\n\\nnext'
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x0c", "\n")
    text = _SOFT_HYPHENS.sub("", text)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _page_headings(doc: pdfium.PdfDocument) -> dict[int, str]:
    """Map each 0-based page index to the outline path in force there.

    A page where bookmarks start gets the path of the first of them; other pages get the path of
    the last bookmark before them; pages before the first bookmark get "". A broken outline gives
    no headings rather than an error.
    """
    first: dict[int, str] = {}
    last: dict[int, str] = {}
    stack: list[tuple[int, str]] = []
    try:
        for bookmark in doc.get_toc():
            while stack and stack[-1][0] >= bookmark.level:
                stack.pop()
            stack.append((bookmark.level, " ".join(bookmark.get_title().split())))
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None and 0 <= index < len(doc):
                path = " > ".join(title for _, title in stack if title)
                first.setdefault(index, path)
                last[index] = path
    except pdfium.PdfiumError:
        return {}
    headings: dict[int, str] = {}
    current = ""
    for index in range(len(doc)):
        headings[index] = first.get(index, current)
        current = last.get(index, current)
    return headings
