"""Extractive answers: the passage's own sentences, quoted and cited, when the model will not answer.

The engine's fitted refusal decision (``rag.refusal.RefusalModel``) looks at the question and the
passages before decoding, and it is the one decision measured with leave-one-product-out. When it
has said "the passages answer" and the small generator still writes a refusal in its own words
("No encontrado esto en los documentos."), the model is overruled by the decision, not the other
way round: on the dev set the model's own refusals after an "answer" decision were mostly wrong
(held-out products: false refusals 0.20 from the decision alone, 0.36 once the model's refusals
were added, refusal recall 0.934 -> 0.938; bench/README.md). The answer is then the passage
sentences that share most content words with the question, quoted verbatim with their ``[n]``:
nothing is written that a passage does not say.

A sentence that is itself a question ("Am I compromised?", "¿Cuál debería elegir?") is never the
quote: FAQ pages and manuals hold their own questions, and the one that best matches the user's is
followed by its answer, so the quote starts after it (and ends before the next question). On the
dev set's end-to-end sample the quote had been the matching question, echoed back to the user.

This module only chooses sentences; ``rag.answer.quoted_answer`` turns them into an ``Answer``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.records import Passage
from rag.text import content_words

MAX_WORDS = 60  # the quote: about two sentences of a manual
MIN_WORDS = 12  # a best sentence shorter than this takes the next one along (a heading, a label)
RANK_DECAY = 0.85  # passage n's overlap counts RANK_DECAY ** (n - 1): retrieval's order breaks ties
# A sentence ends at . ! ? before white space, or at a line break; "3.3 V" and "eyes17.open()"
# do not end it.
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?](?=\s|$)|$)", re.MULTILINE)
_ELLIPSIS = re.compile(r"^\s*…\s*|\s*…\s*$")
_MARKER = re.compile(r"\[(\d+)\]")  # "[3]" inside a passage is not one of the answer's citations
_LETTERS = re.compile(r"[^\W\d_]{2}")  # two letters in a row: a sentence, not a section number

FRAMES = {
    "en": 'The documents say: "{quote}" [{n}]',
    "es": 'Los documentos dicen: "{quote}" [{n}]',
}


@dataclass(frozen=True)
class Extract:
    """The quote chosen for a question: passage ``number`` (1-based, as in the prompt) and its
    sentences, in reading order."""

    number: int
    quote: str


def extract(question: str, passages: Sequence[Passage]) -> Extract | None:
    """The run of sentences, in one passage, that best answers ``question``; None without passages.

    Each sentence is scored by the question's content words it holds, weighted by its passage's
    rank; the best one is quoted with the sentences after it up to ``MIN_WORDS`` words (then cut
    at ``MAX_WORDS``). When the best sentence is a question, its answer (the sentences after it,
    up to the next question) is quoted instead; a question with nothing after it is passed over.

    >>> p1 = Passage("a", "f.txt", "Intro. The battery lasts 8 hours on a full charge.", 1, "", "en", 1.0, 1)
    >>> p2 = Passage("b", "g.txt", "The case is blue.", 1, "", "en", 0.5, 2)
    >>> extract("How long does the battery last?", [p1, p2])
    Extract(number=1, quote='The battery lasts 8 hours on a full charge.')
    >>> faq = "How long does the battery last? About 8 hours. Is it blue? Yes."
    >>> extract("How long does the battery last?", [Passage("c", "faq.txt", faq, 1, "", "en", 1.0, 1)])
    Extract(number=1, quote='About 8 hours.')
    """
    words = content_words(question)
    best: tuple[float, int, int] | None = None  # (score, passage index, first sentence index)
    split = [_sentences(p.text) for p in passages]
    for i, sentences in enumerate(split):
        for j, sentence in enumerate(sentences):
            start = j
            if _is_question(sentence):  # its answer follows it, if anything does
                start = j + 1
                while start < len(sentences) and not _LETTERS.search(sentences[start]):
                    start += 1  # a section number ("12.1.1.6.") between question and answer
                if start >= len(sentences) or _is_question(sentences[start]):
                    continue
            score = len(words & content_words(sentence)) * RANK_DECAY**i
            if best is None or score > best[0]:
                best = (score, i, start)
    if best is None:
        return None
    _, i, j = best
    chosen = [split[i][j]]
    for sentence in split[i][j + 1 :]:
        if len(" ".join(chosen).split()) >= MIN_WORDS or _is_question(sentence):
            break
        chosen.append(sentence)
    return Extract(i + 1, _cut(" ".join(chosen), MAX_WORDS))


def frame(extract: Extract, lang: str) -> str:
    """The quote as an answer in ``lang``: ``The documents say: "..." [1]``.

    >>> frame(Extract(2, "Pulse MODE."), "es")
    'Los documentos dicen: "Pulse MODE." [2]'
    """
    return FRAMES.get(lang, FRAMES["en"]).format(quote=extract.quote, n=extract.number)


def _sentences(text: str) -> list[str]:
    """The sentences of a passage (prompt windows' "…" marks removed), blank ones left out."""
    out = []
    for match in _SENTENCE.finditer(text):
        sentence = _MARKER.sub(r"(\1)", _ELLIPSIS.sub("", match.group(0))).strip()
        if sentence and any(ch.isalnum() for ch in sentence):
            out.append(sentence)
    return out


def _is_question(sentence: str) -> bool:
    """Whether ``sentence`` asks rather than tells (English "?" or Spanish "¿...?").

    >>> _is_question("¿Cuál debería elegir?"), _is_question("Use the WG output.")
    (True, False)
    """
    stripped = sentence.strip()
    return stripped.endswith("?") or stripped.startswith("¿")


def _cut(text: str, max_words: int) -> str:
    """``text`` cut to ``max_words`` words, with " …" when cut.

    >>> _cut("a b c d", 2)
    'a b …'
    """
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " …"
