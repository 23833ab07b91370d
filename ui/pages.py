"""Showing a cited source: a PDF page as an image, and the passage with the cited part marked.

``render_page`` draws one PDF page with pdfium in at most ``MAX_PIXELS``, however large the file
says the page is, and, when given the cited text, paints a translucent box over it; ``page_png`` is
the same behind Streamlit's data cache (keyed on the file's path and modification time, so an
updated file is drawn again). ``highlight_html`` marks
the quote inside the passage text. Nothing here reads the index.
"""

from __future__ import annotations

import html
import io
import math
import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import streamlit as st
from PIL import Image

_HIGHLIGHT, _ALPHA = (255, 214, 0), 96 / 255  # translucent yellow
MAX_PIXELS = 4_000_000
"""Most pixels in a drawn page (4 megapixels, ~12 MB as RGB): a Letter page at 1.5 has 1.1."""
_MAX_KEY_CHARS = 80  # a quote is found by its first letters: enough to be unique on a page


def _alnum_index(text: str) -> tuple[str, list[int]]:
    """Lower-cased letters and digits of ``text`` and each one's position in ``text``.

    >>> _alnum_index("A-b c")
    ('abc', [0, 2, 4])
    """
    keep = [(i, ch.lower()) for i, ch in enumerate(text) if ch.isalnum()]
    return "".join(ch for _, ch in keep), [i for i, _ in keep]


def _find_span(haystack: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` lies in ``haystack``, ignoring case, spaces, punctuation and hyphenation.

    >>> _find_span("Set the  range to 10-V.", "range to 10 V")
    (9, 22)
    """
    flat_hay, positions = _alnum_index(haystack)
    flat_quote, _ = _alnum_index(quote)
    if not flat_quote:
        return None
    start = flat_hay.find(flat_quote)
    length = len(flat_quote)
    if start < 0 and length > _MAX_KEY_CHARS:
        start, length = flat_hay.find(flat_quote[:_MAX_KEY_CHARS]), _MAX_KEY_CHARS
    if start < 0:
        return None
    return positions[start], positions[start + length - 1] + 1


def highlight_html(text: str, quote: str) -> str:
    """The passage as HTML with the cited part in ``<mark>``; everything else escaped.

    >>> highlight_html("Use <b>1 V</b> max.", "1 V")
    '<div class="docqa-passage">Use &lt;b&gt;<mark>1 V</mark>&lt;/b&gt; max.</div>'
    """
    span = _find_span(text, quote) if quote else None
    if span is None:
        body = html.escape(text)
    else:
        start, end = span
        body = (
            f"{html.escape(text[:start])}<mark>{html.escape(text[start:end])}</mark>{html.escape(text[end:])}"
        )
    return f'<div class="docqa-passage">{body}</div>'


def _quote_rects(page: pdfium.PdfPage, quote: str) -> list[tuple[float, float, float, float]]:
    """Page-space rectangles (left, bottom, right, top) covering ``quote`` on ``page``."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        # One code point per character index, so positions map straight back to pdfium's.
        chars = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count))
        span = _find_span(chars, quote)
        if span is None:
            return []
        start, end = span
        return [textpage.get_rect(i) for i in range(textpage.count_rects(start, end - start))]
    finally:
        textpage.close()


def render_scale(width: float, height: float, scale: float = 1.5, max_pixels: int = MAX_PIXELS) -> float:
    """``scale``, lowered so that a ``width`` x ``height`` pt page gives at most ``max_pixels``.

    >>> render_scale(612, 792)  # a Letter page keeps its scale
    1.5
    >>> round(render_scale(14400, 14400), 4)  # PDF's largest page: 2000 x 2000 pixels
    0.1389
    """
    area = max(width, 1.0) * max(height, 1.0)
    return min(scale, math.sqrt(max_pixels / area))


def render_page(
    path: Path, page: int, *, quote: str = "", scale: float = 1.5, max_pixels: int = MAX_PIXELS
) -> bytes:
    """Draw page ``page`` (1-based) of the PDF at ``path`` as PNG bytes, the quote highlighted.

    The page is drawn at ``scale`` pixels per point, or smaller when the image would exceed
    ``max_pixels``: a page's size is whatever the file says, up to 200 x 200 inches.

    Raises:
        ValueError: the page does not exist.
        pypdfium2.PdfiumError: the file is not a readable PDF.
    """
    doc = pdfium.PdfDocument(path)
    try:
        if not 1 <= page <= len(doc):
            raise ValueError(f"{Path(path).name} has no page {page} (it has {len(doc)})")
        pdf_page = doc[page - 1]
        width, height = pdf_page.get_size()
        scale = render_scale(width, height, scale, max_pixels)
        image = pdf_page.render(scale=scale).to_pil()  # RGB, one buffer
        rects = _quote_rects(pdf_page, quote) if quote and pdf_page.get_rotation() == 0 else []
        # Text rectangles are in page space (origin bottom left), the image's origin is top left.
        for left, bottom, right, top in rects:
            box = (
                max(int(left * scale) - 1, 0),
                max(int((height - top) * scale) - 1, 0),
                min(int(right * scale) + 2, image.width),
                min(int((height - bottom) * scale) + 2, image.height),
            )
            if box[0] < box[2] and box[1] < box[3]:
                region = image.crop(box)  # only the box is copied, never the whole page
                image.paste(Image.blend(region, Image.new("RGB", region.size, _HIGHLIGHT), _ALPHA), box)
    finally:
        doc.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@st.cache_data(max_entries=64, show_spinner=False)
def page_png(path: str, mtime: float, page: int, quote: str = "") -> bytes:
    """``render_page`` cached per (file, modification time, page, quote)."""
    return render_page(Path(path), page, quote=quote)


def is_pdf(path: str | Path) -> bool:
    """Whether a source is drawn as a page image (by suffix)."""
    return Path(path).suffix.lower() == ".pdf"


_SPACES = re.compile(r"\s+")


def short_quote(quote: str, limit: int = 160) -> str:
    """A quote on one line, cut at a word near ``limit`` characters.

    >>> short_quote("a  b\\nc", 10)
    'a b c'
    """
    flat = _SPACES.sub(" ", quote).strip()
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"
