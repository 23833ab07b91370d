"""Retrieval: a question -> the index's most relevant passages, dense and lexical scores fused.

Dense search (the embedder's query vector against FAISS) and lexical search (BM25 with FTS5's
formula over the store's in-memory index of the chunk texts, ``ingest.lexical``, diacritics
folded) each return more candidates than asked for; each list's scores are
min-max normalised over its own candidates and mixed as
``dense_weight * dense + (1 - dense_weight) * lexical`` (a candidate missing from one list gets 0
there). Plain reciprocal-rank fusion is not used: with a weaker retriever it drags the stronger
one down (see ``../shared/MODELS.md`` and ``bench/tune_fusion.py``).

A ``Scope`` restricts both searches to some files (``rag.scope.scope_sources``, filtered exactly
by the store) and to passages in some languages: then each search is asked again for more hits
until it has as many in those languages as unscoped retrieval would rank, or has none left, so a
selective scope loses nothing. This module does not decide whether the passages are good enough
to answer (the engine does, from ``rag.refusal.relevance``) and does not rerank with a
cross-encoder (none is bundled).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

import numpy as np

from ingest.embed import Embedder
from ingest.errors import EmptyScope
from ingest.records import Message, Passage, Scope
from ingest.store_protocol import Store
from rag.scope import scope_sources
from rag.text import content_words

# The dense score's weight in the fusion, per embedder, when the settings leave it to the embedder
# (``dense_weight`` < 0). Chosen leave-one-product-out on the dev set (bench/retrieval_lopo.py) and,
# for the default embedder, end to end (bench/eval_lopo.py, bench/README.md):
# - EmbeddingGemma: every fold picks 0.9-1.0 (answers nDCG@10 en/es 0.864/0.724 at 0.9, 0.839/0.730
#   at 0.6, on the int8 index that ships); end to end, one passage shown, citation hit 0.689 ->
#   0.706 (Spanish 0.507 -> 0.592) with refusals level.
# - all-MiniLM-L6-v2 (English-only): folds pick 0.5-0.7; its Spanish falls from 0.543 at 0.6 to
#   0.441 at 0.9, where the lexical side finds what the dense side cannot read.
# Other embedders get DEFAULT_DENSE_WEIGHT, the former default for every embedder.
DENSE_WEIGHT = {"embeddinggemma-300m": 0.9, "all-minilm-l6-v2": 0.6}
DEFAULT_DENSE_WEIGHT = 0.6
CANDIDATES_PER_K = 4  # each retriever returns 4k candidates: enough for fusion to reorder
MIN_CANDIDATES = 20
# A chunk that starts mid-line ("PV2 range is -3.3 to 3.3.") is shown with the line's start
# ("PV1 range is -5 to 5. "): the 0.5B model otherwise read PV2's range as PV1's. 63 of the
# sample corpus's 380 chunks get one; 240 characters is about 60 tokens at most.
LEAD_IN_CHARS = 240


def dense_weight_for(setting: float, embedder_name: str) -> float:
    """The fusion weight to use: ``setting`` when it is 0..1, else the embedder's own.

    >>> dense_weight_for(-1.0, "embeddinggemma-300m+onnx-int8"), dense_weight_for(0.3, "x")
    (0.9, 0.3)
    """
    if setting >= 0:
        return setting
    base = embedder_name.split("+", 1)[0]  # "embeddinggemma-300m+onnx-int8": the model's own weight
    return DENSE_WEIGHT.get(embedder_name, DENSE_WEIGHT.get(base, DEFAULT_DENSE_WEIGHT))


def candidates_for(k: int) -> int:
    """How many hits each search returns for a list of ``k`` passages: enough for fusion to reorder.

    >>> candidates_for(1), candidates_for(10)
    (20, 40)
    """
    return max(CANDIDATES_PER_K * k, MIN_CANDIDATES)


def retrieve(
    question: str,
    index: Store,
    embedder: Embedder,
    *,
    k: int = 5,
    dense_weight: float = 0.7,
    candidates: int | None = None,
    lang: str = "und",
    lang_bonus: float = 0.0,
    lead_in_chars: int = LEAD_IN_CHARS,
    scope: Scope | None = None,
) -> list[Passage]:
    """The ``k`` best passages for ``question``, best first, with fused and per-list scores.

    Args:
        question: the search text (for a follow-up, the engine's rewritten query).
        index: the store to search (``ingest.store_protocol.Store``, e.g. an open
            ``ingest.store.Index``).
        embedder: the embedder the index was built with.
        k: passages to return.
        dense_weight: weight of the dense score; the lexical score gets the rest.
        candidates: how many each retriever returns (default ``candidates_for(k)``).
        lang: the question's language; with ``lang_bonus``, passages in it are preferred.
        lang_bonus: added to the fused score of passages in ``lang`` (manuals often come in
            several languages, and a cross-lingual embedder finds the same page in each).
        lead_in_chars: a passage whose chunk starts mid-line is shown with up to this many
            characters of the line before it (``Store.lead_ins``); 0 for none.
        scope: only passages of these documents, folders and languages (None: the whole index).

    Returns:
        Passages with ``score`` (fused, 0..1, relative to this question's candidates),
        ``dense_score`` (cosine, absolute; None when only the lexical search found it) and
        ``lexical_score`` (BM25; None when only the dense search found it).

    Raises:
        EmptyScope: the scope matches no document, or its documents hold no passage in its
            languages.
    """
    n = candidates or candidates_for(k)
    sources = scope_sources(scope, index.files()) if scope else None
    languages = frozenset(scope.languages) if scope else frozenset()
    dense: list[tuple[str, float]] = []
    lexical: list[tuple[str, float]] = []
    if dense_weight > 0:
        vector = np.asarray(embedder.embed_queries([question])[0], dtype=np.float32)
        dense = _in_languages(lambda m: index.search_dense(vector, m, sources=sources), n, index, languages)
        if languages and not dense:  # dense search ranks every chunk in scope: none is in them
            raise EmptyScope(
                f"the documents in scope hold no passage in {', '.join(sorted(languages))}; "
                "choose another language or other documents"
            )
    if dense_weight < 1:
        query = lexical_query(question)
        lexical = _in_languages(
            lambda m: index.search_lexical(query, m, sources=sources), n, index, languages
        )
    ranked = fuse(dense, lexical, dense_weight)
    if not (lang_bonus and lang != "und"):
        ranked = ranked[:k]
    chunks = {c.id: c for c in index.get_chunks([cid for cid, _ in ranked])}
    if lang_bonus and lang != "und":
        bonus = {cid: lang_bonus for cid, c in chunks.items() if c.lang == lang}
        ranked = sorted(((cid, s + bonus.get(cid, 0.0)) for cid, s in ranked), key=lambda x: -x[1])[:k]
    dense_of, lexical_of = dict(dense), dict(lexical)
    leads = index.lead_ins([cid for cid, _ in ranked], lead_in_chars) if lead_in_chars else {}
    passages = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None:  # removed between search and fetch; never served
            continue
        passages.append(
            Passage(
                chunk_id=cid,
                source=chunk.source,
                text=leads.get(cid, "") + chunk.text,
                page=chunk.page,
                heading=chunk.heading,
                lang=chunk.lang,
                score=score,
                rank=len(passages) + 1,
                dense_score=dense_of.get(cid),
                lexical_score=lexical_of.get(cid),
            )
        )
    return passages


def _in_languages(
    search: Callable[[int], list[tuple[str, float]]], n: int, index: Store, languages: Collection[str]
) -> list[tuple[str, float]]:
    """``search(n)``; with ``languages``, the ``n`` best hits in them, asking ``search`` for 4x
    more hits each round until that many are found or the hits run out (exact, not a post-filter
    of ``n`` hits that a selective language would empty)."""
    if not languages:
        return search(n)
    lang_of: dict[str, str] = {}
    want = n
    while True:
        hits = search(want)
        new = [cid for cid, _ in hits if cid not in lang_of]
        lang_of.update(dict.fromkeys(new, ""))  # removed since the search: never kept
        lang_of.update((c.id, c.lang) for c in index.get_chunks(new))
        kept = [(cid, score) for cid, score in hits if lang_of[cid] in languages]
        if len(kept) >= n or len(hits) < want:
            return kept[:n]
        want *= 4


def lexical_query(question: str) -> str:
    """The question's content words for BM25: stopwords match nearly every chunk, cost time on a
    large index and add almost nothing to the ranking. The question itself if none is left.

    >>> lexical_query("What is the range of the WG generator?")
    'range wg generator'
    """
    words = [w for w in re.findall(r"[^\W_]+", question.lower()) if content_words(w)]
    return " ".join(dict.fromkeys(words)) or question


def fuse(
    dense: Sequence[tuple[str, float]],
    lexical: Sequence[tuple[str, float]],
    dense_weight: float,
    *,
    method: str = "minmax",
) -> list[tuple[str, float]]:
    """Weighted fusion of two scored candidate lists, best first; ties keep dense order.

    >>> fuse([("a", 0.9), ("b", 0.5)], [("b", 7.0), ("c", 1.0)], 0.5)
    [('a', 0.5), ('b', 0.5), ('c', 0.0)]
    """
    dense_norm = _normalise([s for _, s in dense], method)
    lexical_norm = _normalise([s for _, s in lexical], method)
    # A candidate missing from a list ranks below all of that list's candidates.
    floor_d = 0.0 if method == "minmax" else min(dense_norm, default=0.0) - 1.0
    floor_l = 0.0 if method == "minmax" else min(lexical_norm, default=0.0) - 1.0
    d = {cid: s for (cid, _), s in zip(dense, dense_norm, strict=True)}
    lx = {cid: s for (cid, _), s in zip(lexical, lexical_norm, strict=True)}
    order = list(dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in lexical]))
    fused = {
        cid: dense_weight * d.get(cid, floor_d) + (1 - dense_weight) * lx.get(cid, floor_l) for cid in order
    }
    position = {cid: i for i, cid in enumerate(order)}
    return sorted(fused.items(), key=lambda item: (-item[1], position[item[0]]))


def _normalise(scores: Sequence[float], method: str) -> list[float]:
    """Scores mapped to a common scale: "minmax" -> 0..1, "zscore" -> mean 0, std 1.

    >>> _normalise([2.0, 4.0, 3.0], "minmax")
    [0.0, 1.0, 0.5]
    """
    if not scores:
        return []
    values = np.asarray(scores, dtype=np.float64)
    if method == "zscore":
        std = values.std()
        out = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    elif method == "minmax":
        span = values.max() - values.min()
        out = (values - values.min()) / span if span > 0 else np.ones_like(values)
    else:
        raise ValueError(f"unknown normalisation {method!r}: use 'minmax' or 'zscore'")
    return [float(x) for x in out]


def search_query(question: str, history: Sequence[Message] = ()) -> str:
    """The question prefixed by the previous user turn: the search text for a possible follow-up.

    Only retrieval uses it (the model gets the question unchanged, and the history); the engine
    keeps its passages only when they are more relevant than the question's own.

    >>> search_query("And its range?", [Message("user", "What is the voltmeter's input?")])
    "What is the voltmeter's input? And its range?"
    """
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    return f"{previous.strip()} {question}" if previous.strip() else question
