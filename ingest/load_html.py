"""HTML loader: one section per heading (h1–h6), headed by its path, e.g. "Guide > Install > Debian".

Drops what is not content (scripts, styles, navigation, tables of contents, page footers) and
keeps paragraphs and list items on their own lines, a table of two rows and two columns or
more as a Markdown table (``ingest.tables``; other tables, and every table with ``tables=False``,
one line per row, cells joined by " | "); ``<pre>`` keeps its spacing.
``html_sections`` is also the EPUB loader's splitter. It does not run scripts, fetch linked
files or read text from images (except a math image's alt text, which is its formula).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from bs4 import BeautifulSoup, FeatureNotFound, NavigableString, Tag, XMLParsedAsHTMLWarning
from bs4.element import PreformattedString

from ingest.errors import LoadError
from ingest.records import Section
from ingest.tables import is_table, markdown_table

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# What is not content: by tag, id, class (asciidoc's and Sphinx's tables of contents and links).
_CHROME_TAGS = {"script", "style", "noscript", "template", "nav", "footer", "iframe", "button", "head"}
_CHROME_IDS = {"toc", "toctitle", "footer"}
_CHROME_CLASSES = {"toc", "sphinxsidebar", "related", "headerlink"}
_PARAGRAPH = {"p", "pre", "table", "ul", "ol", "dl", "blockquote", "figure", "hr"}
_LINE = {
    "address", "article", "aside", "caption", "dd", "details", "div", "dt", "figcaption",
    "li", "main", "section", "summary", "tr", "body", "form", "fieldset",
}  # fmt: skip
_CELLS = {"td", "th"}
_Item = tuple[Tag | NavigableString | str, bool, bool]  # a node (or a pending break), in <pre>, in a cell
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_LATEX = {"\\Omega": "Ω", "\\omega": "ω", "\\mu": "µ", "\\pm": "±", "\\times": "×", "\\circ": "°",
          "\\,": " ", "\\ ": " ", "~": " "}  # fmt: skip


def load_html(path: Path, source: str, *, tables: bool = True) -> tuple[list[Section], list[str]]:
    """Read an HTML file (its declared or detected encoding) into heading sections.

    ``tables``: tables as Markdown tables (else one line per row).

    Raises:
        LoadError: the file has no text outside markup.
    """
    sections = html_sections(path.read_bytes(), source, tables=tables)
    if not sections:
        raise LoadError("no text in this HTML file")
    return sections, []


def html_sections(markup: str | bytes, source: str, title: str = "", *, tables: bool = True) -> list[Section]:
    """Split one HTML document into sections at its headings.

    Text before the first heading is headed by the document's ``<title>``, else by ``title``.
    Sections without text (a heading directly followed by a subheading) are left out.

    >>> [(s.heading, s.text) for s in html_sections("<h1>A</h1><p>x</p><h2>B</h2><p>y</p>", "f")]
    [('A', 'x'), ('A > B', 'y')]
    """
    soup = _parse(markup)
    own_title = _SPACES.sub(" ", soup.title.get_text()).strip() if soup.title else ""
    return _split(soup.body or soup, source, own_title or title, tables)


def _parse(markup: str | bytes) -> BeautifulSoup:
    with warnings.catch_warnings():  # XHTML (EPUB chapters) parses fine as HTML
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        try:
            return BeautifulSoup(markup, "lxml")
        except FeatureNotFound:  # lxml is optional: the stdlib parser copes
            return BeautifulSoup(markup, "html.parser")


def _math_text(alt: str) -> str:
    """Make a formula image's LaTeX alt text readable.

    >>> _math_text(r"5.1k~\\Omega \\pm 1")
    '5.1k Ω ± 1'
    """
    for latex, text in _LATEX.items():
        alt = alt.replace(latex, text)
    return _SPACES.sub(" ", alt).strip()


def _split(root: Tag, source: str, title: str, tables: bool) -> list[Section]:
    """Walk ``root`` in document order without recursion (deep markup cannot overflow the stack)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    heading = title
    buffer: list[str] = []
    stack: list[_Item] = [(root, False, False)]
    while stack:
        node, pre, cell = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            _append(buffer, node)  # a line break pushed when a block ends
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, CDATA, doctype
                _append(buffer, str(node) if pre else _SPACES.sub(" ", node), pre)
        elif node.name in _HEADINGS:
            _flush(sections, buffer, source, heading)
            level = int(node.name[1])
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, _SPACES.sub(" ", node.get_text(" ")).strip()))
            heading = " > ".join(text for _, text in path if text)
        else:
            stack.extend(_open_tag(node, buffer, pre, cell, tables))
    _flush(sections, buffer, source, heading)
    return sections


def _open_tag(tag: Tag, buffer: list[str], pre: bool, cell: bool, tables: bool) -> list[_Item]:
    """Emit what a tag starts with; return its children (reversed, for the stack) and its end."""
    name = tag.name
    if _is_chrome(tag):
        return []
    # A table holding a table is layout, not data (and each level's cells are not read again).
    if name == "table" and tables and not (pre or cell) and tag.find("table") is None:
        rows = _table_rows(tag)
        if is_table(rows):
            caption = tag.find("caption", recursive=False)
            title = _SPACES.sub(" ", caption.get_text(" ")).strip() if caption else ""
            _append(buffer, "\n\n")
            _append(buffer, (title + "\n" if title else "") + markdown_table(rows))
            _append(buffer, "\n\n")
            return []
    if name == "br":
        _append(buffer, " " if cell else "\n")
        return []
    if name == "img":
        if "math" in (tag.get("class") or []) and tag.get("alt"):
            _append(buffer, f" {_math_text(tag['alt'])} ")
        return []
    pre = pre or name == "pre"
    if name in _CELLS:
        if buffer and not buffer[-1].endswith("\n"):
            _append(buffer, " | ")
        cell = True
    brk = "\n\n" if name in _PARAGRAPH else "\n" if name in _LINE else ""
    if cell and brk:
        brk = " "  # a cell's paragraphs stay on the row's line
    _append(buffer, brk)
    return [(brk, pre, cell)] + [(child, pre, cell) for child in reversed(tag.contents)]


def _table_rows(table: Tag) -> list[list[str]]:
    """The text of each cell of each row of a table (not of tables nested in its cells).

    >>> html = "<table><tr><th>Key</th><th>Action</th></tr><tr><td>F1</td><td>Help<br>me</td></tr></table>"
    >>> _table_rows(_parse(html).table)
    [['Key', 'Action'], ['F1', 'Help me']]
    """
    rows = []
    for section in [table, *table.find_all(["thead", "tbody", "tfoot"], recursive=False)]:
        for row in section.find_all("tr", recursive=False):
            cells = row.find_all(["td", "th"], recursive=False)
            cells = [_SPACES.sub(" ", cell.get_text(" ")).strip() for cell in cells]
            if any(cells):
                rows.append(cells)
    return rows


def _is_chrome(tag: Tag) -> bool:
    """Navigation, scripts, tables of contents, footers; a ``<header>`` only without headings."""
    if tag.name in _CHROME_TAGS or tag.get("id") in _CHROME_IDS or tag.get("role") == "navigation":
        return True
    if not _CHROME_CLASSES.isdisjoint(tag.get("class") or ()):
        return True
    return tag.name == "header" and tag.find(_HEADINGS) is None  # a banner, not an article's title


def _append(buffer: list[str], text: str, pre: bool = False) -> None:
    """Add text; a break only tops up the newlines already there (``</li><li>`` is one line end).

    Outside ``<pre>``, spaces at a line start or after a space are dropped.
    """
    if not pre and text and not text.strip("\n"):
        text = "\n" * (len(text) - _trailing_newlines(buffer))
    elif not pre and (not buffer or buffer[-1].endswith(("\n", " "))):
        text = text.lstrip(" ")
    if text:
        buffer.append(text)


def _trailing_newlines(buffer: list[str]) -> int:
    """How many newlines end the buffer; 2 (a paragraph end) at its start."""
    count = 0
    for piece in reversed(buffer):
        stripped = piece.rstrip("\n")
        count += len(piece) - len(stripped)
        if stripped:
            return count
    return max(count, 2)


def _flush(sections: list[Section], buffer: list[str], source: str, heading: str) -> None:
    lines = [line.rstrip() for line in "".join(buffer).split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    buffer.clear()
    if text:
        sections.append(Section(text, source, heading=heading))
