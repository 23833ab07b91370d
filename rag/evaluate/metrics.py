"""Judge-free, deterministic metrics for one question, as plain functions of plain values.

Retrieval metrics take the relevance of each retrieved passage in rank order (see
``gold.relevance``); answer metrics take texts. Averaging over questions and languages lives in
``summary.py``; nothing here knows about engines or files.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

SUPPORT = 0.5  # share of a sentence's content words its cited passages must hold
_WORD = re.compile(r"[^\W\d_]+|\d+")  # letters or digits: "5V" -> "5", "v" as in "5 V"
_MARKER = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
# Articles and the most frequent function words of English and Spanish, left out of F1/ROUGE-L
# (as SQuAD drops English articles) and of groundedness.
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "or",
        "in",
        "on",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "for",
        "with",
        "as",
        "by",
        "at",
        "from",
        "el",
        "la",
        "los",
        "las",
        "un",
        "una",
        "unos",
        "unas",
        "de",
        "del",
        "al",
        "y",
        "o",
        "en",
        "es",
        "son",
        "se",
        "que",
        "por",
        "para",
        "con",
        "lo",
        "su",
    ]
)


def retrieval_scores(relevant: Sequence[bool], n_gold: int, k: int) -> dict[str, float]:
    """hit@1/5/10, reciprocal rank, nDCG@10 and recall@k for one question.

    Args:
        relevant: for each retrieved passage, best first, whether it is a (new) gold match.
        n_gold: how many gold items the question has (the ideal ranking's length).
        k: retrieval depth; the list is cut there.

    >>> retrieval_scores([False, False, True], n_gold=1, k=10)["ndcg@10"]
    0.5
    """
    rel = list(relevant[:k])
    first = next((i + 1 for i, r in enumerate(rel) if r), None)
    return {
        "hit@1": float(any(rel[:1])),
        "hit@5": float(any(rel[:5])),
        "hit@10": float(any(rel[:10])),
        "mrr": 1.0 / first if first else 0.0,
        "ndcg@10": ndcg(rel, n_gold, 10),
        f"recall@{k}": min(sum(rel), n_gold) / n_gold if n_gold else 0.0,
    }


def gold_rank(relevant: Sequence[bool]) -> int | None:
    """1-based rank of the first gold passage, None when none was retrieved."""
    return next((i + 1 for i, r in enumerate(relevant) if r), None)


def ndcg(relevant: Sequence[bool], n_gold: int, cutoff: int = 10) -> float:
    """Binary-gain nDCG: DCG of the ranking over DCG of ``n_gold`` hits at the top.

    >>> round(ndcg([True, False, True], n_gold=2), 5)
    0.91972
    """
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(relevant[:cutoff]) if r)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(n_gold, cutoff)))
    return dcg / ideal if ideal else 0.0


def tokens(text: str) -> list[str]:
    """Lower-case words and numbers without citation markers and function words.

    >>> tokens("The SEN input [2] is at 3.3V.")
    ['sen', 'input', '3', '3', 'v']
    """
    return [w for w in _WORD.findall(_MARKER.sub(" ", text).casefold()) if w not in _FUNCTION_WORDS]


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style bag-of-words F1 between an answer and the gold answer.

    >>> round(token_f1("about 1.1 mA", "The nominal value is 1.1 mA"), 4)
    0.6667
    """
    pred, ref = tokens(prediction), tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F1: longest common subsequence of words, as F-measure of its precision and recall.

    >>> round(rouge_l("connect the resistor to SEN", "connect resistor between SEN and ground"), 4)
    0.75
    """
    pred, ref = tokens(prediction), tokens(gold)
    lcs = _lcs_length(pred, ref)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, one DP row at a time.

    >>> _lcs_length("abcbdab", "bdcaba")
    4
    """
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def sentences(text: str) -> list[str]:
    """Split an answer into sentences (after . ! ? and at line breaks)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def groundedness(answer: str, cited: Mapping[int, str], *, support: float = SUPPORT) -> float | None:
    """Share of the answer's sentences supported by the passages they cite.

    A sentence's passages are those of its own ``[n]`` markers, or every cited passage when it
    has none. It is supported when at least ``support`` of its distinct content words appear in
    them.
    Sentences with fewer than three content words ("Yes.", a bare list marker) are not counted.

    Args:
        answer: the answer text with ``[n]`` markers.
        cited: marker number -> the text of the passage it points to.

    Returns:
        A share in [0, 1], or None when no sentence has enough words to judge.

    >>> groundedness("SEN is wired to 3.3 volts [1]. The moon is green cheese.", {1: "SEN: 3.3 V, 5.1k"})
    0.5
    """
    everything = set(tokens(" ".join(cited.values())))
    judged = supported = 0
    for sentence in sentences(answer):
        words = set(tokens(sentence))
        if len(words) < 3:
            continue
        numbers = [int(n) for n in _MARKER.findall(sentence) if int(n) in cited]
        source = set(tokens(" ".join(cited[n] for n in numbers))) if numbers else everything
        judged += 1
        supported += sum(w in source for w in words) / len(words) >= support
    return supported / judged if judged else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear between ranks as numpy's default.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def refusal_scores(answerable: Sequence[bool], refused: Sequence[bool]) -> dict[str, float | None]:
    """How refusing went: the share of answerable questions refused (``false_refusal``, the
    headline: a wrong refusal is as bad as an invented answer), and the precision and recall of
    refusing, where a refusal is right on an unanswerable question.

    >>> refusal_scores([True, False, False], [True, True, False])
    {'false_refusal': 1.0, 'refusal_precision': 0.5, 'refusal_recall': 0.5}
    """
    right = sum(r and not a for a, r in zip(answerable, refused, strict=True))
    wrong = sum(r and a for a, r in zip(answerable, refused, strict=True))
    n_refused, n_unanswerable = sum(refused), sum(not a for a in answerable)
    n_answerable = len(answerable) - n_unanswerable
    return {
        "false_refusal": wrong / n_answerable if n_answerable else None,
        "refusal_precision": right / n_refused if n_refused else None,
        "refusal_recall": right / n_unanswerable if n_unanswerable else None,
    }
