"""Markdown loader: one section per heading, headed by its path, e.g. "Setup > Wi-Fi".

Recognises ATX headings (``## Title``) and setext headings (a line underlined with ``===`` or
``---``), never inside fenced code blocks. The Markdown itself is kept as written (code, lists,
links): it reads well to both the embedder and the generator. It does not render HTML blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.errors import LoadError
from ingest.load_text import read_text
from ingest.records import Section

# An ATX heading's opening: what follows must be a space, a tab or the line's end. The rest of the
# line is read by ``_atx`` with string methods: a single regex for the title and its closing #s
# backtracks quadratically on a long line of spaces ("# a" + 20,000 spaces + "b" took 5 s).
_ATX_OPEN = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def load_markdown(path: Path, source: str) -> tuple[list[Section], list[str]]:
    """Read a Markdown file (any encoding) into heading sections.

    Raises:
        LoadError: binary data, or no text besides headings.
    """
    sections = markdown_sections(read_text(path), source)
    if not sections:
        raise LoadError("no text in this Markdown file besides headings")
    return sections, []


def markdown_sections(text: str, source: str) -> list[Section]:
    """Split Markdown text at its headings; sections without text are left out.

    >>> [(s.heading, s.text) for s in markdown_sections("# A\\nx\\n```\\n# no\\n```\\n## B\\ny", "f")]
    [('A', 'x\\n```\\n# no\\n```'), ('A > B', 'y')]
    """
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fence = ""
    for line in text.split("\n"):
        level, title = (0, "") if fence else _heading(line, body)
        if level:
            if _atx(line) is None:
                body.pop()  # a setext heading's title line was taken as text
            _flush(sections, body, source, path)
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
            continue
        fence = _next_fence(line, fence)
        body.append(line)
    _flush(sections, body, source, path)
    return sections


def _heading(line: str, body: list[str]) -> tuple[int, str]:
    """The heading level and title that ``line`` makes, or (0, "")."""
    atx = _atx(line)
    if atx is not None:
        return atx
    match = _SETEXT.match(line)
    previous = body[-1] if body else ""
    is_paragraph_line = previous.strip() and _atx(previous) is None and not _FENCE.match(previous)
    if match and is_paragraph_line and (len(body) < 2 or not body[-2].strip()):
        return (1 if match.group(1)[0] == "=" else 2), previous.strip()
    return 0, ""


def _atx(line: str) -> tuple[int, str] | None:
    """The level and title of an ATX heading line, None for any other line; linear in its length.

    The title is the rest of the line without its closing sequence (spaces or tabs, then "#"s).

    >>> _atx("## Install ##"), _atx("# C# #"), _atx("#   "), _atx("#hashtag"), _atx("####### 7")
    ((2, 'Install'), (1, 'C#'), (1, ''), None, None)
    """
    match = _ATX_OPEN.match(line)
    if match is None:
        return None
    title = line[match.end() :].strip(" \t")
    opened = title.rstrip("#")
    if opened != title and opened[-1:] in (" ", "\t"):
        title = opened.rstrip(" \t")
    return len(match.group(1)), title.strip()


def _next_fence(line: str, fence: str) -> str:
    """The open fence after ``line``: "" outside code, else the opening marker.

    >>> _next_fence("```python", ""), _next_fence("````", "```"), _next_fence("~~~", "```")
    ('```', '', '```')
    """
    match = _FENCE.match(line)
    if not match:
        return fence
    marker = match.group(1)
    if not fence:
        return marker
    closes = marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker) :]
    return "" if closes else fence


def _flush(sections: list[Section], body: list[str], source: str, path: list[tuple[int, str]]) -> None:
    text = "\n".join(body).strip()
    body.clear()
    if text:
        heading = " > ".join(title for _, title in path if title)
        sections.append(Section(text, source, heading=heading))
