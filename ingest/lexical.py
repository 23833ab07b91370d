"""The terms of a lexical (FTS5 BM25) search: a query's words, and which of them are worth a pass.

``fts_terms`` turns any text into words safe to quote in an FTS5 ``MATCH`` (punctuation and quotes
dropped, case and Unicode normalised; accents are folded by the FTS5 tokenizer itself).
``TermCounts`` leaves out the words found in half the chunks or more when another query word is
in at least ``k`` chunks: FTS5's BM25 gives them an IDF of 1e-6, so the chunks that only they
match rank below all the others and the ``k`` best are the same, but each such word costs a pass
over half the index (the 100k-chunk bench: p50 317 -> 63 ms). The counts are cached per catalog
version.

This module runs no SQL of its own (``ingest.catalog`` does) and does not rank anything.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Sequence

from ingest import catalog

MAX_TERMS = 64
CACHE_TERMS = 50_000  # term counts kept per catalog version


def fts_terms(query: str) -> list[str]:
    """The words of a query, safe to quote in an FTS5 MATCH.

    >>> fts_terms('¿Cómo "configuro" el WiFi?! (v2.0)')
    ['cómo', 'configuro', 'el', 'wifi', 'v2', '0']
    """
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFC", query).lower())
    return list(dict.fromkeys(words))[:MAX_TERMS]


def match_expression(terms: Sequence[str]) -> str:
    """The FTS5 query that matches any of ``terms``.

    >>> match_expression(["range", "wg"])
    '"range" OR "wg"'
    """
    return " OR ".join(f'"{t}"' for t in terms)


class TermCounts:
    """How many chunks hold each term, at one catalog version (not thread-safe: the store locks)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._version = -1
        self._chunks = 0

    def selective(self, conn: sqlite3.Connection, terms: list[str], k: int) -> list[str]:
        """``terms`` less those in half the chunks or more, if one of the rest is in ``k`` chunks
        or more (else the ``k`` best could include chunks that only the common words match)."""
        version = catalog.read_version(conn)
        if version != self._version or len(self._counts) > CACHE_TERMS:
            self._counts, self._version = {}, version
            self._chunks = catalog.chunk_count(conn)
        for term in terms:
            if term not in self._counts:
                self._counts[term] = catalog.term_count(conn, term)
        kept = [t for t in terms if 2 * self._counts[t] < self._chunks]
        return kept if max((self._counts[t] for t in kept), default=0) >= k else terms
