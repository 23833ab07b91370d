"""Word (.docx) loader: one section per heading, headed by its path, e.g. "Manual > Install".

Headings are paragraphs in the Title / Heading 1–9 styles or with an outline level. Body
paragraphs and tables are kept in document order: a table of two rows and two columns or more
as a Markdown table (``ingest.tables``), other tables (and all with ``tables=False``) one line
per row, cells joined by " | ".
Page headers and footers, footnotes, comments and text in images or text boxes are not read.
Legacy .doc files and password-protected documents are refused with a reason.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.archive import check_archive
from ingest.errors import LoadError
from ingest.records import Section
from ingest.tables import is_table, markdown_table

_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # compound file: a legacy .doc, or an encrypted .docx
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_OUTLINE_LEVEL = "./w:pPr/w:outlineLvl/@w:val"
_BODY_TEXT_LEVEL = 9  # outline level 9 means "body text", not a heading


def load_docx(path: Path, source: str, *, tables: bool = True) -> tuple[list[Section], list[str]]:
    """Read a .docx file into heading sections; ``tables``: tables as Markdown tables.

    Raises:
        LoadError: not a readable .docx (legacy .doc, encrypted, corrupt) or no text.
    """
    document = _open(path)
    sections: list[Section] = []
    path_stack: list[tuple[int, str]] = []
    body: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            body.extend(_table_lines(block, tables))
            continue
        level = _heading_level(block)
        text = block.text.strip()
        if level is None or not text:
            body.append(text)
            continue
        _flush(sections, body, source, path_stack)
        while path_stack and path_stack[-1][0] >= level:
            path_stack.pop()
        path_stack.append((level, " ".join(text.split())))
    _flush(sections, body, source, path_stack)
    if not sections:
        raise LoadError("no text in this Word document")
    return sections, []


def _open(path: Path) -> docx.document.Document:
    with path.open("rb") as file:
        magic = file.read(4)
    if magic == _OLE_MAGIC:
        raise LoadError("a legacy .doc or password-protected file; save it as an unprotected .docx")
    check_archive(path, ".docx")  # before python-docx reads whole members into memory
    try:
        return docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise LoadError(f"not a readable .docx ({err}); check that the file is complete") from err


def _heading_level(paragraph: Paragraph) -> int | None:
    """0 for Title, 1–9 for headings (by style name or outline level), None for body text."""
    style = paragraph.style
    name = style.name if style is not None else ""
    if name == "Title":
        return 0
    match = _HEADING_STYLE.match(name or "")
    if match:
        return int(match.group(1))
    elements = [paragraph._p] + ([style.element] if style is not None else [])
    for element in elements:
        values = element.xpath(_OUTLINE_LEVEL)
        if values and values[0].isdigit() and int(values[0]) < _BODY_TEXT_LEVEL:
            return int(values[0]) + 1
    return None


def _table_lines(table: Table, markdown: bool) -> list[str]:
    """A Markdown table, or one line per row; a merged cell's text appears once.

    Nested tables are read only as their cells' plain text.
    """
    rows = []
    for row in table.rows:
        cells, seen = [], set()  # a cell merged across columns is the same element
        for cell in row.cells:
            cells.append("" if id(cell._tc) in seen else " ".join(cell.text.split()))
            seen.add(id(cell._tc))
        rows.append(cells)
    if markdown and is_table(rows):
        return ["", markdown_table([row for row in rows if any(row)]), ""]
    return ["", *(" | ".join(cell for cell in row if cell) for row in rows), ""]


def _flush(sections: list[Section], body: list[str], source: str, stack: list[tuple[int, str]]) -> None:
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip()
    body.clear()
    if text:
        heading = " > ".join(title for _, title in stack if title)
        sections.append(Section(text, source, heading=heading))
