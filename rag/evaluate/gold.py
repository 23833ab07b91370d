"""Gold references and whether a retrieved passage matches one.

A question's ``gold`` names what a right retrieval finds, in one of three ways:

- a chunk id (32 hex digits, or ``chunk:ID``): that exact chunk;
- a file, optionally with a page or a heading: ``eyes17/en/eyes17.pdf``,
  ``eyes17/en/eyes17.pdf#12`` (1-based page), ``weechat/quickstart.en.html#Add an IRC server``
  (a heading the passage's heading path contains); ``file:PATH`` forces this reading;
- gold passage text (anything with spaces that is not a path, or ``text:...``): a passage matches
  when one text contains the other, or when most content words of the shorter one are in the
  longer one.

Paths match when equal or when one ends with the other at a folder boundary, so a gold written
relative to ``corpus/`` matches an index built from the folder above. This module does not look
anything up in an index: it only compares references with passages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.records import Passage

TEXT_OVERLAP = 0.6  # share of the shorter text's content words found in the other one
_MIN_WORDS = 5  # below this many content words, only containment counts as a text match
_CHUNK_ID = re.compile(r"[0-9a-f]{32}")
_WORD = re.compile(r"\w+")
_PATHLIKE = re.compile(r"^[^\s#]+(?:/[^\s#]*|\.\w{1,5})(?:#.*)?$")


@dataclass(frozen=True, slots=True)
class GoldRef:
    """One gold reference.

    Args:
        kind: "chunk", "file" or "text".
        value: the chunk id, the file path (POSIX, relative) or the gold text.
        page: for "file": the 1-based page the passage must be on, or None for any.
        heading: for "file": text the passage's heading path must contain, or "" for any.
    """

    kind: str
    value: str
    page: int | None = None
    heading: str = ""

    def __str__(self) -> str:
        if self.kind == "file":
            suffix = f"#{self.page}" if self.page is not None else ""
            return self.value + (f"#{self.heading}" if self.heading else suffix)
        if self.kind == "text":
            short = " ".join(self.value.split())
            return "text:" + (short[:77] + "..." if len(short) > 80 else short)
        return self.value


def parse_gold(raw: str) -> GoldRef:
    """Read one gold reference written by a person.

    >>> parse_gold("eyes17/en/eyes17.pdf#12")
    GoldRef(kind='file', value='eyes17/en/eyes17.pdf', page=12, heading='')

    Raises:
        ValueError: the reference is empty.
    """
    text = raw.strip()
    if not text:
        raise ValueError("empty gold reference")
    prefix, _, rest = text.partition(":")
    if prefix in ("chunk", "file", "text") and rest.strip():
        return _parse_as(prefix, rest.strip())
    if _CHUNK_ID.fullmatch(text):
        return GoldRef("chunk", text)
    if _PATHLIKE.match(text):
        return _parse_as("file", text)
    return GoldRef("text", text)


def _parse_as(kind: str, text: str) -> GoldRef:
    if kind != "file":
        return GoldRef(kind, text)
    path, _, fragment = text.partition("#")
    path = _norm_path(path)
    fragment = fragment.strip()
    if fragment.isdigit():
        return GoldRef("file", path, page=int(fragment))
    return GoldRef("file", path, heading=fragment)


def matches(ref: GoldRef, passage: Passage, *, overlap: float = TEXT_OVERLAP) -> bool:
    """Whether ``passage`` is (part of) the gold that ``ref`` names."""
    if ref.kind == "chunk":
        return passage.chunk_id == ref.value
    if ref.kind == "file":
        if not _same_file(passage.source, ref.value):
            return False
        if ref.page is not None and passage.page != ref.page:
            return False
        return not ref.heading or ref.heading.casefold() in passage.heading.casefold()
    return text_overlaps(ref.value, passage.text, overlap=overlap)


def relevance(
    refs: Sequence[GoldRef], passages: Sequence[Passage], *, overlap: float = TEXT_OVERLAP
) -> list[bool]:
    """For each passage in rank order: does it match a gold ref that no earlier passage matched?

    Counting each gold ref once keeps nDCG and recall at the level of gold documents even when a
    gold file is split into several chunks.

    >>> relevance([GoldRef("file", "a.txt")], [_p("a.txt"), _p("b.txt"), _p("a.txt")])
    [True, False, False]
    """
    found: set[int] = set()
    out: list[bool] = []
    for passage in passages:
        new = {i for i, ref in enumerate(refs) if i not in found and matches(ref, passage, overlap=overlap)}
        found |= new
        out.append(bool(new))
    return out


def text_overlaps(gold: str, text: str, *, overlap: float = TEXT_OVERLAP) -> bool:
    """Whether two texts are the same passage, or one holds the other.

    >>> text_overlaps("SEN is connected to 3.3 V", "Inside, SEN is connected to 3.3 V through 5.1k.")
    True
    """
    a, b = _norm_text(gold), _norm_text(text)
    if not a or not b:
        return False
    if a in b or (len(b) >= 20 and b in a):
        return True
    wa, wb = _content_words(a), _content_words(b)
    small, large = (wa, wb) if sum(wa.values()) <= sum(wb.values()) else (wb, wa)
    size = sum(small.values())
    return size >= _MIN_WORDS and sum((small & large).values()) / size >= overlap


def _norm_text(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def _content_words(text: str) -> Counter[str]:
    """Words of three letters or more: drops most articles and prepositions in en and es."""
    return Counter(w for w in text.split() if len(w) >= 3)


def _norm_path(path: str) -> str:
    """``./a\\b.txt`` -> ``a/b.txt``."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _same_file(source: str, gold: str) -> bool:
    a, b = _norm_path(source), _norm_path(gold)
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def _p(source: str) -> Passage:
    """A bare passage for the doctests."""
    return Passage(chunk_id="x", source=source, text="", page=None, heading="", lang="en", score=0.0, rank=1)
