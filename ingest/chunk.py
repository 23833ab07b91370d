"""Token-aware chunking: sections -> chunks that each fit the embedder's maximum input.

Counts are in the embedder's own tokens (``token_spans``), so no chunk is silently truncated by
the model. Cuts prefer, in order: a paragraph break, a sentence or line end, a space between
words; a word is cut only when one "word" is longer than the whole budget. Consecutive chunks
share up to ``overlap`` tokens, starting on a word. Every chunk's text is an exact slice of its
section (``section.text[c.start:c.end] == c.text``), stripped of surrounding whitespace, and its
id is ``chunk_id(file sha, position, text)``, so the same file always gives the same ids.

Markdown tables (``ingest.tables``) are cut between rows only, into pieces of at most half a
chunk, and every piece after the first starts with the table's header and separator lines
again (``Chunk.table_header``), so a row is never read without its column names; the line just
before the table (a caption, or the sentence introducing it) is repeated with them when it
fits, so each piece also says what the table is about. A row longer than a piece is cut as
text, each part after the header. A caption line ("Figure 3: ...", "Tabla 2: ...") is never cut
from the text beside it: no cut falls on its edges or inside it, and a caption just before or
after a table goes with the table.

It does not embed, detect languages or read files.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import Protocol

from ingest.records import Chunk, Section, chunk_id
from ingest.tables import CAPTION, TableBlock, table_blocks

_PARAGRAPH, _SENTENCE, _WORD, _NONE = 3, 2, 1, 0
_SENTENCE_END = ".!?;:。！？…"
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
# A section longer than this is chunked one piece at a time (cut at a paragraph, line or word end):
# the tokenizer's offsets cost ~700 bytes per token, so a 20 MB one-line text tokenized whole took
# gigabytes. Real sections (a page, a heading's text) are far shorter and are chunked as before.
_PIECE_CHARS = 100_000


class Tokenizer(Protocol):
    """Anything that gives the character spans of its tokens (every ``Embedder`` does)."""

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


def chunk_limit(max_tokens: int, chunk_tokens: int, chunk_overlap: int) -> tuple[int, int]:
    """The (size, overlap) to use: never above the model's limit, overlap under half the size.

    >>> chunk_limit(254, 256, 32)
    (254, 32)
    """
    size = max(1, min(chunk_tokens, max_tokens))
    return size, max(0, min(chunk_overlap, size // 2 - 1))


def chunk_sections(
    sections: Sequence[Section],
    tokenizer: Tokenizer,
    size: int,
    overlap: int,
    *,
    file_sha256: str,
) -> list[Chunk]:
    """Split sections into chunks of at most ``size`` tokens.

    Args:
        sections: one file's sections, in order (``Chunk.section`` is the index in this list).
        tokenizer: the embedder, or anything with its ``token_spans``.
        size: most tokens per chunk (see ``chunk_limit``).
        overlap: tokens shared by consecutive chunks of a section (0 <= overlap < size).
        file_sha256: the file's content hash, part of every chunk id.

    Returns:
        The chunks, numbered by ``position`` across the file; whitespace-only text gives none.
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"bad chunk size/overlap {size}/{overlap}: need size >= 1, 0 <= overlap < size")
    chunks: list[Chunk] = []
    for number, section in enumerate(sections):
        for start, end, tokens, header in _split_section(section.text, tokenizer, size, overlap):
            text = header + section.text[start:end]
            chunks.append(
                Chunk(
                    id=chunk_id(file_sha256, len(chunks), text),
                    source=section.source,
                    text=text,
                    start=start,
                    end=end,
                    section=number,
                    position=len(chunks),
                    page=section.page,
                    heading=section.heading,
                    lang=section.lang,
                    tokens=tokens,
                    table_header=header,
                )
            )
    return chunks


_Piece = tuple[int, int, int, str]  # start, end, tokens, the table header repeated before it


def _split_section(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[_Piece]:
    """The text between Markdown tables through ``_split_long``, each table through ``_split_table``.

    The line just before a table (a caption, or the sentence that introduces it: "Some
    environment variables are used by WeeChat if they are defined:") joins its header, so every
    piece of the table says what the table is about, when the two take under half a piece; a
    caption just after a table is its last row (unless it is also the last line before the next
    table: then it is that table's).
    """
    blocks = table_blocks(text)
    out: list[_Piece] = []
    at = 0
    table_size = _table_tokens(size)
    for number, block in enumerate(blocks):
        later = blocks[number + 1].start if number + 1 < len(blocks) else len(text)
        head = _lead_line(text, at, block, tokenizer, table_size)
        start = block.start if head is None else head[0]
        tail = _caption_line(text, block.end, later, last=False)
        if (
            tail is not None
            and number + 1 < len(blocks)
            and tail == _caption_line(text, block.end, later, last=True)
        ):
            tail = None
        out += [(at + a, at + b, n, "") for a, b, n in _split_long(text[at:start], tokenizer, size, overlap)]
        out += _split_table(text, start, block, tail, tokenizer, table_size)
        at = block.end if tail is None else tail[1]
    return out + [(at + a, at + b, n, "") for a, b, n in _split_long(text[at:], tokenizer, size, overlap)]


def _table_tokens(size: int) -> int:
    """Most tokens in one piece of a table: half a chunk (16 at least, never above ``size``).

    Fewer rows per piece: a question about one row finds a piece about few rows, not a vector
    averaged over a dozen (``bench/bench_table_qa.py``).

    >>> _table_tokens(256), _table_tokens(20), _table_tokens(8)
    (128, 16, 8)
    """
    return max(size // 2, min(size, 16))


def _lead_line(
    text: str, start: int, block: TableBlock, tokenizer: Tokenizer, size: int
) -> tuple[int, int] | None:
    """The last non-blank line of ``text[start:block.start]``, if it and the table's header lines
    take under half of ``size`` tokens (else the table could not repeat them in every piece)."""
    lines = [(a, b) for a, b in _line_spans(text, start, block.start) if text[a:b].strip()]
    if not lines:
        return None
    a, b = lines[-1]
    return (a, b) if 2 * len(tokenizer.token_spans(text[a : block.header_end])) < size else None


def _caption_line(text: str, start: int, end: int, *, last: bool) -> tuple[int, int] | None:
    """The last (or first) non-blank line of ``text[start:end]``, if it is a caption.

    >>> _caption_line("Intro.\\nTable 2: Pins\\n", 0, 21, last=True), _caption_line("x\\ny", 0, 3, last=False)
    ((7, 20), None)
    """
    lines = [(a, b) for a, b in _line_spans(text, start, end) if text[a:b].strip()]
    if not lines:
        return None
    a, b = lines[-1] if last else lines[0]
    return (a, b) if CAPTION.fullmatch(text, a, b) else None


def _line_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each line of ``text[start:end]``, in ``text``'s offsets."""
    out, at = [], start
    while at <= end:
        stop = text.find("\n", at, end)
        stop = end if stop == -1 else stop
        out.append((at, stop))
        at = stop + 1
    return out


def _split_table(
    text: str, start: int, block: TableBlock, tail: tuple[int, int] | None, tokenizer: Tokenizer, size: int
) -> list[_Piece]:
    """Pieces of one table, cut between rows; each after the first repeats the header lines.

    ``text[start:block.header_end]`` is the header (with a caption before the table, if any);
    ``tail``, a caption after it, is kept as a last row. Rows are packed by their own token
    counts and each piece is counted again whole; a row that does not fit after the header alone
    is cut as text, each part after the header. A header using half the budget or more leaves
    the table to be cut as text.
    """
    header = text[start : block.header_end]
    head_tokens = len(tokenizer.token_spans(header))
    units = list(block.rows) + ([tail] if tail else [])
    if head_tokens * 2 >= size:
        end = units[-1][1]
        return [(start + a, start + b, n, "") for a, b, n in _split(text[start:end], tokenizer, size, 0)]
    costs = [len(tokenizer.token_spans(text[a:b])) + 1 for a, b in units]
    out: list[_Piece] = []
    i = 0
    while i < len(units):
        first, prefix = (start, "") if i == 0 else (units[i][0], header)
        j, total = i, head_tokens + costs[i]
        while j + 1 < len(units) and total + costs[j + 1] <= size:
            j += 1
            total += costs[j]
        while True:  # counted again whole: a join can tokenize differently
            count = len(tokenizer.token_spans(prefix + text[first : units[j][1]]))
            if count <= size or j == i:
                break
            j -= 1
        if count <= size:
            out.append((first, units[j][1], count, prefix))
        else:
            out += _split_row(text, units[i], header, head_tokens, tokenizer, size)
        i = j + 1
    return out


def _split_row(
    text: str, row: tuple[int, int], header: str, head_tokens: int, tokenizer: Tokenizer, size: int
) -> list[_Piece]:
    """A row longer than a chunk cut as text, each part counted after the header."""
    budget = size - head_tokens
    while True:
        parts = [(row[0] + a, row[0] + b) for a, b, _ in _split(text[row[0] : row[1]], tokenizer, budget, 0)]
        counted = [(a, b, len(tokenizer.token_spans(header + text[a:b]))) for a, b in parts]
        if all(n <= size for _, _, n in counted) or budget <= 1:
            return [(a, b, n, header) for a, b, n in counted if n <= size]
        budget = max(1, budget - max(1, max(n for _, _, n in counted) - size))


def _split_long(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """``_split`` over each of ``_pieces(text)``: memory bounded by a piece, not by the text."""
    out: list[tuple[int, int, int]] = []
    for first, last in _pieces(text):
        out += [(first + a, first + b, n) for a, b, n in _split(text[first:last], tokenizer, size, overlap)]
    return out


def _pieces(text: str, limit: int = _PIECE_CHARS) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces of ``text`` of at most ``limit`` characters.

    Each is cut after its last paragraph break in its second half, else its last line end, else
    its last space, else at ``limit`` (a "word" that long is no word).

    >>> _pieces("ab\\n\\ncd ef gh", 6), _pieces("abcdefgh", 3), _pieces("short", 100)
    ([(0, 4), (4, 10), (10, 12)], [(0, 3), (3, 6), (6, 8)], [(0, 5)])
    """
    pieces, start = [], 0
    while len(text) - start > limit:
        end = start + limit
        for separator in ("\n\n", "\n", " "):
            found = text.rfind(separator, start + limit // 2, end)
            if found != -1:
                end = found + len(separator)
                break
        pieces.append((start, end))
        start = end
    pieces.append((start, len(text)))
    return pieces


def _split(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of each chunk of one text, stripped, non-empty."""
    spans = [s for s in tokenizer.token_spans(text) if s[1] > s[0]] if text.strip() else []
    captions = [m.span() for m in CAPTION.finditer(text)]
    out: list[tuple[int, int, int]] = []
    first = 0
    while first < len(spans):
        hi = min(first + size, len(spans))
        while True:
            cut = hi if hi == len(spans) else _best_cut(text, spans, first, hi, captions)
            # Untokenized characters (controls, zero-width) between tokens stay inside a chunk.
            left = 0 if first == 0 else spans[first][0]
            right = len(text) if cut == len(spans) else spans[cut][0]
            start, end = _strip(text, left, right)
            # Re-tokenize the slice alone: a cut can change how its edges tokenize.
            count = len(tokenizer.token_spans(text[start:end])) if end > start else 0
            if count <= size or cut - first <= 1:
                break
            hi = max(first + 1, cut - (count - size))
        if end > start and count <= size:
            out.append((start, end, count))
        elif end > start:
            out.extend(_hard_split(text, start, end, tokenizer, size))
        if cut >= len(spans):
            break
        first = _overlap_start(text, spans, first, cut, overlap)
    return out


def _best_cut(
    text: str, spans: list[tuple[int, int]], first: int, hi: int, captions: Sequence[tuple[int, int]] = ()
) -> int:
    """The token index to end a chunk at (exclusive).

    In the chunk's second half a paragraph break beats a sentence end, which beats a space (the
    latest of the best wins); failing all of these, the latest space anywhere; failing that, ``hi``.
    A cut touching one of the ``captions`` (line spans) counts as no boundary at all.
    """
    half = first + max(1, (hi - first) // 2)
    best, best_level = hi, _NONE
    for cut in range(hi, first, -1):
        upper = cut >= half
        level = _NONE if _touches(captions, spans[cut - 1][1], spans[cut][0]) else _level(text, spans, cut)
        if level == _PARAGRAPH and upper:
            return cut
        if level > best_level and (upper or best_level == _NONE):
            best, best_level = cut, level
        if not upper and best_level >= _WORD:
            break
    return best


def _touches(spans: Sequence[tuple[int, int]], left: int, right: int) -> bool:
    """Whether ``[left, right]`` meets one of the sorted, disjoint ``spans`` (edges included).

    >>> _touches([(5, 9)], 9, 10), _touches([(5, 9)], 1, 4), _touches([], 0, 1)
    (True, False, False)
    """
    i = bisect_left(spans, (left,)) - 1  # the last span starting before left, then the ones after
    return any(a <= right and left <= b for a, b in spans[max(0, i) : i + 3])


def _level(text: str, spans: list[tuple[int, int]], cut: int) -> int:
    """How good a boundary lies between token ``cut - 1`` and token ``cut``.

    >>> _level("One. Two", [(0, 3), (3, 4), (5, 8)], 2)
    2
    """
    left, right = spans[cut - 1][1], spans[cut][0]
    while left > spans[cut - 1][0] and text[left - 1].isspace():
        left -= 1
    while right < spans[cut][1] and text[right].isspace():
        right += 1
    gap = text[left:right]
    if not gap or not any(ch.isspace() for ch in gap):
        return _NONE
    if _BLANK_LINE.search(gap):
        return _PARAGRAPH
    if "\n" in gap or (left > 0 and text[left - 1] in _SENTENCE_END):
        return _SENTENCE
    return _WORD


def _overlap_start(text: str, spans: list[tuple[int, int]], first: int, cut: int, overlap: int) -> int:
    """Where the next chunk starts: ``overlap`` tokens back at most, on a word start."""
    if overlap == 0:
        return cut
    for level in (_SENTENCE, _WORD):
        for start in range(max(first + 1, cut - overlap), cut):
            if _level(text, spans, start) >= level:
                return start
    return max(first + 1, cut - overlap)


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) to exclude whitespace at both ends."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _hard_split(
    text: str, start: int, end: int, tokenizer: Tokenizer, size: int
) -> list[tuple[int, int, int]]:
    """Last resort for one token whose text re-tokenizes longer than ``size``: cut by characters."""
    out: list[tuple[int, int, int]] = []
    while start < end:
        stop = end
        while True:
            a, b = _strip(text, start, stop)
            count = len(tokenizer.token_spans(text[a:b])) if b > a else 0
            if count <= size or stop - start <= 1:
                break
            stop = start + max(1, (stop - start) * size // count)
        if b > a and count <= size:
            out.append((a, b, count))
        start = stop
    return out
