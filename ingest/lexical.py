"""Lexical (BM25) search: a query's words, and an in-memory inverted index that ranks chunks by them.

``fts_terms`` turns any text into words safe to quote in an FTS5 ``MATCH`` (the catalog's FTS5
table still answers the exact-reference queries of the bench). ``tokens`` splits and folds text as
FTS5's ``unicode61 remove_diacritics 2`` tokenizer does (letters and digits, lower case, accents
removed), so "configuracion" finds "configuración".

``LexicalIndex`` is what ``ingest.store`` searches: postings (chunk rowid, term frequency) per term
in numpy arrays, scored with FTS5's own BM25 (k1 1.2, b 0.75, idf ``log((N - n + 0.5)/(n + 0.5))``
floored at 1e-6, length in tokens), so on text without headings its ranking is FTS5's. A chunk's
heading path is a second field (BM25F): its words count ``heading_weight`` times in the term
frequency and in the length, the text's once. Why not FTS5 itself: ``bm25()``
scores every matching row one at a time, and real questions' content words ("python", "use",
"file") match a third of a manual's chunks: 104 ms p50 at 100k chunks, ~1 s at 1M
(bench/bench_retrieval.py). Here a term's postings are scored in one vectorised step. Words in half
the chunks or more are skipped when another query word is in at least ``k`` chunks (their idf is
1e-6: they cannot lift a chunk above one that a rarer word matches).

Like the FAISS file, the index is a cache of the catalog (the single truth): ``ingest.store`` adds
and removes chunks as it writes the catalog, saves it with the catalog version it matches
(``save``/``load``) and rebuilds it from the chunk texts (``build``) whenever that version differs.
This module runs no SQL (``ingest.catalog`` does) and knows nothing of files or vectors.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from ingest.layout import atomic_write

MAX_TERMS = 64
LEXICAL = "lexical.npz"  # the saved index, beside vectors.faiss
K1, B = 1.2, 0.75  # FTS5's bm25() defaults
# What the saved file holds: 3 = the heading path a field of weight ``heading_weight`` (stored in
# the file). A file of another format or weight is rebuilt from the catalog, like one of another
# catalog version.
FORMAT = 3
# The heading field's weight against the text's 1 (bench/title_ablation.py chose it on one product
# and scored it on the other). At 1 a chunk reads as its heading followed by its text.
HEADING_WEIGHT = 1.0
TF_SCALE = 8  # term frequencies and lengths are stored times this, so a weighted count stays an integer
FLUSH_POSTINGS = 1_000_000  # added postings kept in Python lists before they become a numpy segment
_WORD = re.compile(r"[^\W_]+")
_ASCII_SEPARATORS = str.maketrans({c: " " for c in range(128) if not chr(c).isalnum()})
_MARKS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def field_counts(heading: str, text: str, heading_weight: float) -> tuple[Counter[str], float]:
    """A chunk's BM25F term frequencies and length: each word of the text counts 1, each word of
    the heading path ``heading_weight`` (rounded to a multiple of 1 / ``TF_SCALE``).

    A FAQ's question (its heading) is matched by the words of a user's question: the heading field
    took weechat's FAQ pages from nDCG@10 0.761 / 0.737 to 0.906 / 0.904 (en / es) and cost the
    sample manuals one question at weight 1 (bench/title_ablation.py).

    >>> counts, length = field_counts("Install", "Install with make.", 0.5)
    >>> dict(counts), length
    ({'install': 1.5, 'with': 1, 'make': 1}, 3.5)
    """
    words = tokens(text)
    counts = Counter(words)
    weight = round(heading_weight * TF_SCALE) / TF_SCALE
    if not weight or not heading:  # at weight 0 a heading word is not posted at all
        return counts, len(words)
    head = tokens(heading)
    for word in head:
        counts[word] += weight
    return counts, len(words) + weight * len(head)


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


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the index holds them: lower case, accents removed.

    >>> tokens("¿Cómo CONFIGURO la Señal_2?")
    ['como', 'configuro', 'la', 'senal', '2']
    """
    text = text.lower()
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
        if not text.isascii():
            return _WORD.findall(text)
    return text.translate(_ASCII_SEPARATORS).split()  # the same words, 4-8x faster than findall


class LexicalIndex:
    """BM25 over chunk texts, keyed by catalog rowid (not thread-safe: the store locks).

    Args:
        version: the catalog version the index matches (``ingest.store`` compares it).
        heading_weight: the heading field's weight against the text's (0 to 4, in steps of 1/8;
            None: ``HEADING_WEIGHT``).
    """

    def __init__(self, version: int = -1, heading_weight: float | None = None) -> None:
        heading_weight = HEADING_WEIGHT if heading_weight is None else heading_weight
        if not 0 <= heading_weight <= 4:
            raise ValueError(f"heading_weight {heading_weight} is outside 0..4")
        self.version = version
        self.heading_weight = heading_weight
        self._vocab: dict[str, int] = {}
        self._segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (ptr, rowids, tf)
        self._pending: tuple[list[int], list[int], list[int]] = ([], [], [])  # term ids, rowids, tf
        self._length = np.zeros(0, dtype=np.int32)  # weighted tokens x TF_SCALE per rowid; 0: no live chunk
        self._docs = 0
        self._tokens = 0
        self._removed = 0  # chunks removed whose postings are still in the segments
        self._last = 0  # the highest rowid added: rowids only grow, so postings stay sorted
        self._maxtf = np.zeros(0, dtype=np.int64)  # per term: highest tf and ...
        self._mindl = np.zeros(0, dtype=np.int64)  # ... shortest chunk: its best possible score

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def build(
        cls, chunks: Iterable[tuple[int, str, str]], version: int, heading_weight: float | None = None
    ) -> LexicalIndex:
        """An index of ``chunks`` ((rowid, heading path, text)), matching catalog ``version``."""
        index = cls(version, heading_weight)
        index.add(chunks)
        index._flush()
        return index

    def add(self, chunks: Iterable[tuple[int, str, str]]) -> None:
        """Index these (rowid, heading path, text) chunks; a rowid must not be in the index already."""
        vocab = self._vocab
        terms, rows, tfs = self._pending
        for rowid, heading, text in chunks:
            if rowid <= self._last or rowid >= 2**31:
                raise ValueError(
                    f"chunk rowid {rowid} cannot follow {self._last} in the lexical index: rowids must "
                    "grow (the catalog never reuses one)"
                )
            counts, length = field_counts(heading, text, self.heading_weight)
            self._grow(rowid)
            self._last = rowid
            for word in [w for w in counts if w not in vocab]:
                vocab[word] = len(vocab)
            terms.extend([vocab[w] for w in counts])
            tfs.extend(counts.values())
            rows.extend([rowid] * len(counts))
            length = max(TF_SCALE, round(length * TF_SCALE))  # an empty chunk still counts as a row
            self._length[rowid] = length
            self._docs += 1
            self._tokens += length
            if len(terms) >= FLUSH_POSTINGS:
                self._flush()
                terms, rows, tfs = self._pending

    def remove(self, rowids: Iterable[int]) -> None:
        """Drop these chunks (their postings are skipped at search and dropped by ``compact``)."""
        for rowid in rowids:
            if 0 < rowid < len(self._length) and self._length[rowid]:
                self._docs -= 1
                self._tokens -= int(self._length[rowid])
                self._length[rowid] = 0
                self._removed += 1

    def count(self) -> int:
        """Number of chunks indexed."""
        return self._docs

    def compact(self) -> None:
        """One segment without the postings of removed chunks (``save`` does it first)."""
        self._flush()
        if len(self._segments) <= 1 and not self._removed:
            return
        terms, rowids, tf = [], [], []
        for ptr, seg_rows, seg_tf in self._segments:
            seg_terms = np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))
            live = self._length[seg_rows] > 0
            terms.append(seg_terms[live])
            rowids.append(seg_rows[live])
            tf.append(seg_tf[live])
        self._segments = [_segment(np.concatenate(terms), np.concatenate(rowids), np.concatenate(tf))]
        self._removed = 0
        self._maxtf, self._mindl = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self._bound(self._segments[0])

    # -- searching -----------------------------------------------------------------------------

    def search(self, query: str, k: int, among: Collection[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` best (rowid, BM25 score > 0), best first, for any of ``query``'s words.

        ``among``: only these rowids (scored with the whole index's statistics, as unscoped).
        """
        words = list(dict.fromkeys(tokens(query)))[:MAX_TERMS]
        if k <= 0 or not words or not self._docs:
            return []
        self._flush()
        if among is not None:
            return self._search_among(words, k, among)
        return self._search_maxscore(self.selective(words, k), k)

    def _search_maxscore(self, words: list[str], k: int) -> list[tuple[int, float]]:
        """Exact top ``k`` without scoring every posting (MaxScore): terms by their highest possible
        score, rarest first; once the ``k``-th best score so far beats what the remaining terms can
        give a chunk together, no other chunk can enter, and those terms are only looked up for the
        chunks already found (binary search in their rowid-sorted postings)."""
        avgdl = self._tokens / self._docs if self._tokens else 1.0
        terms = []
        for word in words:
            rows, tf = self._postings(word)
            if self._removed:  # postings of removed chunks are still there until compact()
                live = self._length[rows] > 0
                rows, tf = rows[live], tf[live]
            if len(rows):
                idf = _idf(self._docs, len(rows))
                term = self._vocab[word]
                bound = idf * _saturation(self._maxtf[term], self._mindl[term], avgdl)
                terms.append((bound, idf, rows, tf))
        terms.sort(key=lambda t: -t[0])
        rest = [*np.cumsum([t[0] for t in terms][::-1])[::-1].tolist(), 0.0]  # rest[i]: terms i.. together
        found, scores = np.zeros(0, dtype=np.int32), np.zeros(0)
        theta, i = 0.0, 0
        for i, (_, idf, rows, tf) in enumerate(terms):
            if len(scores) >= k:
                theta = float(np.partition(scores, len(scores) - k)[len(scores) - k])
                if rest[i] < theta:
                    break
            gained = idf * _saturation(tf, self._length[rows], avgdl)
            if not len(found):
                found, scores = rows, gained
            else:
                found, where = np.unique(np.concatenate([found, rows]), return_inverse=True)
                scores = np.bincount(where, weights=np.concatenate([scores, gained]), minlength=len(found))
        else:
            i = len(terms)
        for j in range(i, len(terms)):  # the chunks found get these terms' share; no other can enter
            keep = scores + rest[j] >= theta  # those that cannot reach the k best are dropped
            found, scores = found[keep], scores[keep]
            _, idf, rows, tf = terms[j]
            at = np.minimum(np.searchsorted(rows, found), len(rows) - 1)  # both int32: no copy
            hit = rows[at] == found
            scores[hit] += idf * _saturation(tf[at[hit]], self._length[found[hit]], avgdl)
            if len(scores) >= k:
                theta = float(np.partition(scores, len(scores) - k)[len(scores) - k])
        return _top(found, scores, k)

    def _search_among(self, words: list[str], k: int, among: Collection[int]) -> list[tuple[int, float]]:
        """Every posting of every word scored, then only the ``among`` rowids kept."""
        allowed = np.zeros(len(self._length), dtype=bool)
        allowed[np.fromiter((r for r in among if 0 < r < len(self._length)), dtype=np.int64)] = True
        avgdl = self._tokens / self._docs if self._tokens else 1.0
        found, scores = [], []
        for word in words:
            rows, tf = self._postings(word)
            live = self._length[rows] > 0
            if not live.any():
                continue
            idf = _idf(self._docs, int(live.sum()))
            keep = live & allowed[rows]
            found.append(rows[keep].astype(np.int64))
            scores.append(idf * _saturation(tf[keep], self._length[rows[keep]], avgdl))
        if not found:
            return []
        rows, where = np.unique(np.concatenate(found), return_inverse=True)
        return _top(rows, np.bincount(where, weights=np.concatenate(scores), minlength=len(rows)), k)

    def selective(self, words: Sequence[str], k: int) -> list[str]:
        """``words`` (as ``tokens`` gives them) less those in half the chunks or more, if one of the
        rest is in ``k`` chunks or more. FTS5's BM25 gives such words an idf of 1e-6, so they cannot
        lift a chunk above one that a rarer word matches and the ``k`` best are the same, but each
        costs a pass over half the index. Else (the rest cannot fill ``k``) every word is kept."""
        self._flush()
        counts = [self._df(w) for w in words]
        kept = [w for w, n in zip(words, counts, strict=True) if 2 * n < self._docs]
        most = max((n for w, n in zip(words, counts, strict=True) if w in kept), default=0)
        return kept if most >= k else list(words)

    # -- saving --------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index (compacted) to ``path`` atomically, with its version."""
        self.compact()
        ptr, rowids, tf = self._segments[0] if self._segments else _segment(*_empty())
        live = np.flatnonzero(self._length).astype(np.int32)
        vocab = "\n".join(sorted(self._vocab, key=self._vocab.__getitem__))
        arrays = {
            "meta": np.array(
                [self.version, self._docs, self._tokens, FORMAT, round(self.heading_weight * TF_SCALE)],
                dtype=np.int64,
            ),
            "vocab": np.frombuffer(vocab.encode("utf-8"), dtype=np.uint8),
            "ptr": ptr,
            "rowids": rowids,
            "tf": tf,
            "live": live,
            "length": self._length[live],
        }

        def write(tmp: Path) -> None:
            with tmp.open("wb") as file:
                np.savez(file, **arrays)

        atomic_write(path, write)

    @classmethod
    def load(
        cls, path: Path, version: int | None = None, heading_weight: float | None = None
    ) -> LexicalIndex:
        """Read a file written by ``save``; raises ``ValueError`` if it is missing or unreadable, or
        (``version`` given) matches another catalog version, or was built with a heading weight
        other than ``heading_weight`` (None: ``HEADING_WEIGHT``); all found before the postings are
        read."""
        heading_weight = HEADING_WEIGHT if heading_weight is None else heading_weight
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = data["meta"]
                if len(meta) != 5 or int(meta[3]) != FORMAT:
                    raise ValueError(f"lexical index {path} is of an older format")
                if version is not None and int(meta[0]) != version:
                    raise ValueError(f"lexical index {path} is of catalog version {int(meta[0])}")
                if int(meta[4]) != round(heading_weight * TF_SCALE):
                    raise ValueError(f"lexical index {path} has heading weight {int(meta[4]) / TF_SCALE}")
                arrays = {name: data[name] for name in data.files}
            version, docs, total, _, step = (int(x) for x in arrays["meta"])
            text = arrays["vocab"].tobytes().decode("utf-8")
            ptr, rowids, tf = arrays["ptr"], arrays["rowids"], arrays["tf"]
            live, length = arrays["live"], arrays["length"]
        except (OSError, KeyError, ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as err:
            raise ValueError(f"unreadable lexical index {path}: {err}") from None
        words = text.split("\n") if text else []
        if len(ptr) != len(words) + 1 or int(ptr[-1]) != len(rowids) or len(live) != docs:
            raise ValueError(f"inconsistent lexical index {path}")
        index = cls(version, step / TF_SCALE)
        index._vocab = {w: i for i, w in enumerate(words)}
        index._segments = [(ptr, rowids, tf)] if len(rowids) else []
        index._length = np.zeros(int(live.max()) + 1 if len(live) else 0, dtype=np.int32)
        index._length[live] = length
        index._docs, index._tokens = docs, total
        index._last = int(live.max()) if len(live) else 0
        for segment in index._segments:
            index._bound(segment)
        return index

    # -- private -------------------------------------------------------------------------------

    def _grow(self, rowid: int) -> None:
        if rowid >= len(self._length):
            grown = np.zeros(max(rowid + 1, 2 * len(self._length), 1024), dtype=np.int32)
            grown[: len(self._length)] = self._length
            self._length = grown

    def _flush(self) -> None:
        """Turn the pending postings into a numpy segment."""
        terms, rows, tfs = self._pending
        if not terms:
            return
        tf = np.rint(np.array(tfs, dtype=np.float64) * TF_SCALE).astype(np.int64)
        self._segments.append(_segment(np.array(terms, dtype=np.int64), np.array(rows, dtype=np.int64), tf))
        self._bound(self._segments[-1])
        self._pending = ([], [], [])

    def _bound(self, segment: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Fold a segment into each term's highest tf and shortest chunk (removals leave them
        conservative: still bounds)."""
        ptr, rows, tf = segment
        size = len(self._vocab)
        if len(self._maxtf) < size:
            grow = size - len(self._maxtf)
            self._maxtf = np.concatenate([self._maxtf, np.zeros(grow, dtype=np.int64)])
            self._mindl = np.concatenate([self._mindl, np.full(grow, 2**31, dtype=np.int64)])
        present = np.flatnonzero(np.diff(ptr))
        if len(present):
            starts = ptr[:-1][present]
            most = np.maximum.reduceat(tf.astype(np.int64), starts)
            least = np.minimum.reduceat(self._length[rows].astype(np.int64), starts)
            self._maxtf[present] = np.maximum(self._maxtf[present], most)
            self._mindl[present] = np.minimum(self._mindl[present], least)

    def _df(self, word: str) -> int:
        """How many live chunks hold ``word``."""
        rows, _ = self._postings(word)
        return int((self._length[rows] > 0).sum()) if self._removed else len(rows)

    def _postings(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """(rowids, tf) of one word over all segments, dead chunks included."""
        term = self._vocab.get(word)
        if term is None:
            return _empty()[1:]
        rows, tfs = [], []
        for ptr, seg_rows, seg_tf in self._segments:
            if term + 1 < len(ptr):
                rows.append(seg_rows[ptr[term] : ptr[term + 1]])
                tfs.append(seg_tf[ptr[term] : ptr[term + 1]])
        if len(rows) == 1:
            return rows[0], tfs[0]
        return (np.concatenate(rows), np.concatenate(tfs)) if rows else _empty()[1:]


def _idf(docs: int, holding: int) -> float:
    """FTS5's idf: log((N - n + 0.5) / (n + 0.5)), floored at 1e-6."""
    return max(math.log((docs - holding + 0.5) / (holding + 0.5)), 1e-6)


def _saturation(tf: np.ndarray | int, length: np.ndarray | int, avgdl: float) -> np.ndarray | float:
    """BM25's term-frequency part, FTS5's k1 and b; grows with ``tf``, shrinks with ``length``
    (``tf``, ``length`` and ``avgdl`` all times ``TF_SCALE``)."""
    tf = np.asarray(tf, dtype=np.float64) / TF_SCALE
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * np.asarray(length, dtype=np.float64) / avgdl))


def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best (rowid, score > 0), best first, ties by rowid."""
    positive = scores > 0
    rows, scores = rows[positive], scores[positive]
    if len(rows) > k:
        best = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[best], scores[best]
    return sorted(
        ((int(r), float(s)) for r, s in zip(rows, scores, strict=True)), key=lambda x: (-x[1], x[0])
    )[:k]


def _segment(
    terms: np.ndarray, rowids: np.ndarray, tf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR postings from parallel (term id, rowid, tf) arrays: (ptr by term id, rowids, tf)."""
    order = np.argsort(terms, kind="stable")  # runs of sorted segments merge fast; rowid order is not needed
    terms = terms[order]
    ptr = np.zeros(int(terms[-1]) + 2 if len(terms) else 1, dtype=np.int64)
    ptr[1:] = np.bincount(terms, minlength=len(ptr) - 1)
    ptr = np.cumsum(ptr)
    return ptr, rowids[order].astype(np.int32), np.minimum(tf[order], 65535).astype(np.uint16)  # tf <= 8191


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint16)
