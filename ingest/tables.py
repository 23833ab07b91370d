"""Tables kept as tables: Markdown table text from PDF pages, HTML and Word rows, and finding it again.

A table becomes a Markdown table (a header row, a separator, one line per row), so a row keeps
its column names and the chunker (``ingest.chunk``) can cut a long table between rows and repeat
its header. On a PDF page, ``pdf_page_text`` finds ruled tables with pdfplumber's line
strategy, reads each cell's text with pdfium (the same text layer as the rest of the page) and
puts the table where its first character was, without its cells in the surrounding text. Tables
drawn without lines, and tables that continue on the next page (its rows get that page's first
row as their header), are left as they were: text.

It does not OCR, read images of tables or merge a table split across pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MIN_ROWS, _MIN_COLUMNS = 2, 2  # a header and a row, two columns with text: less is a framed box
_MIN_PATHS = 4  # vector paths a page needs before pdfplumber looks for ruled tables on it
_MAX_PATHS = 20_000  # a page drawn with more paths is a drawing: not searched (pdfplumber is slow)
_MAX_CELL_CHARS = 2_000  # a longer cell is cut: a "cell" that size is a layout box, not data
# A Markdown table's lines: "| a | b |", and its separator "| --- | --- |".
_TABLE_LINE = re.compile(r"^\|.*\|[ \t]*$", re.M)
_SEPARATOR = re.compile(r"^\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*$", re.M)
# A caption: "Figure 3: ...", "Fig. 2 ...", "Figura 1.2 -", "Table 4.", "Tabla 2: ...".
CAPTION = re.compile(r"^[ \t]*(?:fig(?:ure|ura)?\.?|tab(?:le|la)\.?)[ \t]*\d+(?:[.\-]\d+)*\b.*$", re.I | re.M)


@dataclass(frozen=True, slots=True)
class TableBlock:
    """Where a Markdown table lies in a text: ``[start, header_end)`` is its header and separator
    lines (with the line end), ``[header_end, end)`` its rows; ``rows`` their (start, end) spans."""

    start: int
    header_end: int
    end: int
    rows: tuple[tuple[int, int], ...]


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as a Markdown table; short rows padded, pipes escaped.

    Each cell's spaces and line ends become single spaces; an empty header cell stays empty.

    >>> print(markdown_table([["Pin", "Range"], ["A1", "±16 V"], ["IN1 | IN2", "0 to\\n3.3 V"]]))
    | Pin | Range |
    | --- | --- |
    | A1 | ±16 V |
    | IN1 \\| IN2 | 0 to 3.3 V |
    """
    width = max(len(row) for row in rows)
    lines = []
    for number, row in enumerate(rows):
        cells = [_cell(text) for text in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if number == 0:
            lines.append("| " + " | ".join(["---"] * width) + " |")
    return "\n".join(lines)


def is_table(rows: Sequence[Sequence[str]]) -> bool:
    """Whether rows hold a table: two rows or more with text in two cells or more.

    A frame around a figure or a note is not one: one row, one column, or its text in cells of
    different rows (a note's icon below and its text beside it).

    >>> is_table([["Pin", "Range"], ["A1", "±16 V"]]), is_table([["Note", "Read this first."]])
    (True, False)
    >>> is_table([["", "On macOS, use Homebrew."], ["Note", ""]])
    False
    """
    full = sum(1 for row in rows if sum(1 for cell in row if cell.strip()) >= _MIN_COLUMNS)
    return full >= _MIN_ROWS


def table_blocks(text: str) -> list[TableBlock]:
    """The Markdown tables in ``text``: a table line, a separator line, then table lines.

    >>> text = "Ratings\\n\\n| Pin | Max |\\n| --- | --- |\\n| A1 | 16 V |\\n| A2 | 16 V |\\n\\nEnd"
    >>> [(b.start, b.header_end, b.end, len(b.rows)) for b in table_blocks(text)]
    [(9, 37, 64, 2)]
    """
    lines = _lines(text)
    blocks: list[TableBlock] = []
    i = 0
    while i + 1 < len(lines):
        (a, b), (c, d) = lines[i], lines[i + 1]
        if not (_TABLE_LINE.match(text, a, b) and _SEPARATOR.match(text, c, d)):
            i += 1
            continue
        rows = []
        j = i + 2
        while j < len(lines) and _TABLE_LINE.match(text, *lines[j]):
            rows.append(lines[j])
            j += 1
        if rows:
            header_end = min(rows[0][0], len(text))
            blocks.append(TableBlock(a, header_end, rows[-1][1], tuple(rows)))
        i = j
    return blocks


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, without its line end.

    >>> _lines("ab\\n\\ncd")
    [(0, 2), (3, 3), (4, 6)]
    """
    out, start = [], 0
    for match in re.finditer("\n", text):
        out.append((start, match.start()))
        start = match.end()
    out.append((start, len(text)))
    return out


def _cell(text: str) -> str:
    """One cell's text on one line, pipes escaped, at most ``_MAX_CELL_CHARS`` characters.

    >>> _cell(" 0 to\\n 3.3 V | max ")
    '0 to 3.3 V \\\\| max'
    """
    return " ".join(text.split())[:_MAX_CELL_CHARS].replace("|", "\\|")


# --- PDF pages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PdfTable:
    """A table found on a PDF page: its box in PDF space (left, bottom, right, top) and its rows."""

    box: tuple[float, float, float, float]
    rows: tuple[tuple[str, ...], ...]


CellText = Callable[[float, float, float, float], str]
"""Text inside a box (left, bottom, right, top) in PDF space: pdfium's ``get_text_bounded``."""


def find_pdf_tables(plumber_page: Any, cell_text: CellText) -> list[PdfTable]:
    """Ruled tables on one pdfplumber page, each cell read through ``cell_text``.

    pdfplumber's "lines" strategy finds the grid from the page's drawn lines and rectangles;
    frames that are not tables (``is_table``) are dropped. Coordinates are converted from
    pdfplumber's (top-left origin, relative to the media box) to PDF space.
    """
    x0, _, _, y1 = (float(v) for v in plumber_page.mediabox)
    found = []
    for table in plumber_page.find_tables():
        rows = []
        for row in table.rows:
            rows.append(
                tuple(
                    "" if box is None else cell_text(x0 + box[0], y1 - box[3], x0 + box[2], y1 - box[1])
                    for box in row.cells
                )
            )
        rows = _without_empty_lines(rows)
        if is_table(rows):
            left, top, right, bottom = table.bbox
            found.append(PdfTable((x0 + left, y1 - bottom, x0 + right, y1 - top), tuple(rows)))
    return found


def _without_empty_lines(rows: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """Rows and columns with text only: double frames leave thin empty cells along the edges.

    >>> _without_empty_lines([("", "Pin", "Max", ""), ("", "A1", "16 V", ""), ("", "", " ", "")])
    [('Pin', 'Max'), ('A1', '16 V')]
    """
    rows = [tuple(row) for row in rows if any(cell.strip() for cell in row)]
    width = max((len(row) for row in rows), default=0)
    keep = [i for i in range(width) if any(i < len(row) and row[i].strip() for row in rows)]
    return [tuple(row[i] if i < len(row) else "" for i in keep) for row in rows]


def count_paths(page: Any) -> int:
    """How many vector paths a pdfium page draws at its top level (lines, rectangles, curves)."""
    import pypdfium2.raw as pdfium_c

    count = pdfium_c.FPDFPage_CountObjects(page.raw)
    path = pdfium_c.FPDF_PAGEOBJ_PATH
    return sum(
        pdfium_c.FPDFPageObj_GetType(pdfium_c.FPDFPage_GetObject(page.raw, i)) == path for i in range(count)
    )


def worth_searching(path_objects: int) -> bool:
    """Whether a page with this many vector paths may hold a ruled table worth looking for.

    >>> worth_searching(2), worth_searching(40), worth_searching(50_000)
    (False, True, False)
    """
    return _MIN_PATHS <= path_objects <= _MAX_PATHS


Point = tuple[float, float] | None  # a character's centre in PDF space; None for a line end


def char_centres(text: str, char_box: Callable[[int], tuple[float, float, float, float]]) -> list[Point]:
    """The centre of each character of pdfium's page text (None for the line ends it adds).

    >>> char_centres("a\\nb", lambda i: (0, 0, 2, 4))
    [(1.0, 2.0), None, (1.0, 2.0)]
    """
    out: list[Point] = []
    for index, char in enumerate(text):
        if char in "\r\n":
            out.append(None)
            continue
        left, bottom, right, top = char_box(index)
        out.append(((left + right) / 2, (bottom + top) / 2))
    return out


def text_in_box(text: str, centres: Sequence[Point], box: tuple[float, float, float, float]) -> str:
    """The characters whose centre lies in ``box``, in text order; a line end after one of them
    stays (as a space between the words it separates).

    A cell's text by centres, not pdfium's bounded text: that also returns characters merely
    touching the box, so a tall glyph would show in two rows.

    >>> text_in_box("ab\\ncd", [(1, 1), (5, 1), None, (1, 0), (9, 9)], (0, 0, 6, 2))
    'ab\\nc'
    """
    left, bottom, right, top = box
    out, last = [], -2
    for index, centre in enumerate(centres):
        if centre is None:
            if last == index - 1:
                out.append(text[index])
                last = index
        elif left <= centre[0] <= right and bottom <= centre[1] <= top:
            out.append(text[index])
            last = index
    return "".join(out)


def text_without_tables(
    text: str, boxes: Sequence[tuple[float, float, float, float]], centres: Sequence[Point]
) -> tuple[str, list[int]]:
    """The page text with each table's characters replaced by one marker, and which tables were seen.

    Args:
        text: pdfium's page text, one character per pdfium character index.
        boxes: the tables' boxes in PDF space.
        centres: each character's centre (``char_centres``).

    Returns:
        The text where the first character of table ``k`` inside its box became ``"\\x00{k}\\x00"``
        and its other characters are gone; and the tables that had characters (a table whose box
        holds none of the page's characters is left out by the caller: its text is elsewhere).

    >>> text_without_tables("ab\\ncd", [(0.0, 0.0, 10.0, 10.0)], [(20, 20), (20, 20), None, (1, 1), (2, 1)])
    ('ab\\n\\x000\\x00', [0])
    """
    out: list[str] = []
    seen: list[int] = []
    for index, char in enumerate(text):
        table = None
        if char == "\x00":  # the marker's own character
            continue
        if centres[index] is not None:
            x, y = centres[index]
            table = next((k for k, (a, b, c, d) in enumerate(boxes) if a <= x <= c and b <= y <= d), None)
        if table is None:
            out.append(char)
        elif table not in seen:
            seen.append(table)
            out.append(f"\x00{table}\x00")
    return "".join(out), seen


def insert_tables(text: str, tables: Sequence[str]) -> str:
    """Put table ``k``'s Markdown where ``text`` has its marker, as a paragraph of its own.

    >>> insert_tables("Ratings:\\n\\x000\\x00\\nEnd", ["| a | b |"])
    'Ratings:\\n\\n| a | b |\\n\\nEnd'
    """
    return re.sub(r"\n*\x00(\d+)\x00\n*", lambda m: f"\n\n{tables[int(m.group(1))]}\n\n", text)


class PdfTableReader:
    """Tables on the pages of one PDF, for ``ingest.load_pdf``; pdfplumber opens the file lazily.

    pdfplumber parses the file a second time (pdfminer, pure Python): only pages drawn with enough
    vector paths to hold a ruled table (``worth_searching``) are given to it. A page it cannot read
    keeps its plain text; after a failure to open the file no page is searched again.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pdf: Any = None
        self._failed = False

    def page_text(self, index: int, path_objects: int, textpage: Any, text: str) -> str:
        """``text`` (pdfium's text of page ``index``) with its ruled tables as Markdown tables.

        Args:
            index: the 0-based page number.
            path_objects: how many vector paths the page draws.
            textpage: the page's pdfium text page (cell text and character boxes come from it).
            text: ``textpage.get_text_range()``.

        Returns:
            The text unchanged when the page has no table (or pdfplumber fails on it), else the
            text with each table's characters replaced by its Markdown table.
        """
        if self._failed or not worth_searching(path_objects) or len(text) != textpage.count_chars():
            return text
        try:
            page = self._page(index)
            if page is None:
                return text
            try:
                centres = char_centres(text, textpage.get_charbox)
                tables = find_pdf_tables(page, lambda *box: text_in_box(text, centres, box))
            finally:
                page.close()
        except Exception:  # pdfminer choking on a malformed page must not lose the page's text
            return text
        if not tables:
            return text
        marked, seen = text_without_tables(text, [t.box for t in tables], centres)
        if not seen:
            return text
        return insert_tables(marked, [markdown_table(table.rows) for table in tables])

    def _page(self, index: int) -> Any:
        if self._pdf is None:
            try:
                import pdfplumber

                self._pdf = pdfplumber.open(self._path)
                pages = self._pdf.pages
            except Exception:  # unreadable for pdfminer: keep pdfium's text for every page
                self._failed = True
                return None
        else:
            pages = self._pdf.pages
        return pages[index] if index < len(pages) else None

    def close(self) -> None:
        """Close pdfplumber's file, if it was opened."""
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None
