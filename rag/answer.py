"""Answer: the model's raw text and the prompt's passages -> a checked ``Answer``.

``[n]`` markers (also ``[1, 2]``, ``[1-3]`` and ``[1][2]``) are resolved to the passages given to
the model; markers that point to no passage are removed and counted. An answer without any valid
citation is ``unsupported``; an answer that says the documents do not answer (the prompt's refusal
sentence in English or Spanish, or a common variant) is ``refused``. This module does not call the
model and does not judge whether a cited passage really supports the sentence citing it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ingest.records import Answer, Citation, Passage, Timings
from rag.extractive import Extract, frame
from rag.refusal import is_refusal, refusal
from rag.text import content_words, fold

_MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|-|–)\s*\d+)*)\s*\]")
# A sentence runs to . ! ? followed by white space, or to a blank line: "3.3 V" and a line
# wrapped by the PDF's layout do not end it.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=\S)|\n(?![ \t]*\n))+[.!?]?")
_WORD = re.compile(r"\w{3,}")
MAX_QUOTE_CHARS = 400
MIN_SUPPORT = 0.6  # share of a sentence's content words a passage must hold to be cited for it
# An echo of a passage header copied from the prompt: "[1] (eyes17.pdf, p. 8, Intro)".
_HEADER_ECHO = re.compile(
    r"\[(\d+)\]\s*\((?:[^()\n]*\.(?:pdf|html?|txt|md|epub|docx)\b[^()\n]*)\)", re.IGNORECASE
)
# A sentence (without a citation marker) and its closing punctuation. A . ! ? ends it only before
# white space or the end: "5.1 kΩ", "eyes17.eyes.open()" and "irc.server.libera" are one claim.
_CLAIM_CHAR = r"(?:[^.!?\n\[\]]|[.!?](?=[^\s.!?\[\]]))"
_CLAIM = re.compile(rf"({_CLAIM_CHAR}*[^\W_]{_CLAIM_CHAR}*?)([.!?]+(?=\s|$)|\n|$)")


def build_answer(
    question: str,
    raw_text: str,
    prompt_passages: Sequence[Passage],
    *,
    passages: Sequence[Passage] | None = None,
    lang: str = "en",
    timings: Timings | None = None,
) -> Answer:
    """Resolve the citations of ``raw_text`` and build the ``Answer``.

    Args:
        question: the user's question.
        raw_text: the generator's whole output.
        prompt_passages: the passages as numbered in the prompt (``[1]`` is the first).
        passages: everything retrieved (default: ``prompt_passages``), kept on the answer.
        lang: the language the answer was asked for.
        timings: step timings to attach.
    """
    text, numbers, invalid = clean_citations(
        _HEADER_ECHO.sub(r"[\1]", raw_text.strip()), len(prompt_passages)
    )
    if not numbers and not is_refusal(text):
        text, numbers = attribute(text, prompt_passages)
    # Quote from the whole chunk the reader will see, not only the window the prompt held.
    whole = {p.chunk_id: p.text for p in passages or ()}
    citations = tuple(_citation(n, prompt_passages[n - 1], _citing_sentence(text, n), whole) for n in numbers)
    refused = is_refusal(text) and (not citations or len(_WORD.findall(text)) <= 25)
    if refused:  # one sentence for every refusal (the model's wording varies: "No encontrado ...")
        text, citations = refusal(lang), ()
    return Answer(
        question=question,
        text=text,
        citations=citations,
        refused=refused,
        unsupported=not citations and not refused,
        passages=tuple(prompt_passages if passages is None else passages),
        invalid_citations=invalid,
        lang=lang,
        timings=timings or Timings(),
    )


def quoted_answer(
    question: str,
    extract: Extract,
    prompt_passages: Sequence[Passage],
    *,
    passages: Sequence[Passage] | None = None,
    lang: str = "en",
    timings: Timings | None = None,
) -> Answer:
    """The ``Answer`` that quotes ``extract`` (``rag.extractive``) verbatim, citing its passage.

    Used when the refusal decision said the passages answer and the model refused anyway; the
    answer is marked ``extracted``.

    >>> p = Passage("c", "f.pdf", "Press MODE to switch.", 3, "", "en", 1.0, 1)
    >>> a = quoted_answer("How?", Extract(1, "Press MODE to switch."), [p])
    >>> a.text, a.citations[0].page, a.extracted, a.refused
    ('The documents say: "Press MODE to switch." [1]', 3, True, False)
    """
    number = extract.number
    whole = {p.chunk_id: p.text for p in passages or ()}
    citation = _citation(number, prompt_passages[number - 1], extract.quote, whole)
    return Answer(
        question=question,
        text=frame(extract, lang),
        citations=(citation,),
        passages=tuple(prompt_passages if passages is None else passages),
        lang=lang,
        timings=timings or Timings(),
        extracted=True,
    )


def cite_passage(answer: Answer, number: int, prompt_passages: Sequence[Passage]) -> Answer:
    """``answer`` (uncited) citing passage ``number`` for its whole text: ``" [n]"`` is added.

    For an answer whose words match no passage but whose meaning does (a translation of it: a
    Spanish answer from an English manual); the caller decides that it does.

    >>> p = Passage("c", "f.pdf", "The battery lasts 8 hours.", 2, "", "en", 1.0, 1)
    >>> a = cite_passage(Answer("q", "La batería dura 8 horas.", unsupported=True), 1, [p])
    >>> a.text, a.citations[0].page, a.unsupported
    ('La batería dura 8 horas [1].', 2, False)
    """
    passage = prompt_passages[number - 1]
    text = answer.text.rstrip()
    end = text[-1] if text and text[-1] in ".!?" else ""
    text = f"{text[: len(text) - len(end)].rstrip()} [{number}]{end}"
    whole = {p.chunk_id: p.text for p in answer.passages}
    citation = _citation(number, passage, answer.text, whole)
    return dataclasses.replace(answer, text=text, citations=(citation,), unsupported=False)


def clean_citations(text: str, count: int) -> tuple[str, list[int], int]:
    """Keep markers that point to passages 1..count; drop the others.

    Returns the cleaned text, the valid numbers in order of first use, and how many numbers were
    invalid.

    >>> clean_citations("Yes [1, 7]. No [9].", 2)
    ('Yes [1]. No.', [1], 2)
    """
    used: list[int] = []
    invalid = 0

    def _replace(match: re.Match[str]) -> str:
        nonlocal invalid
        valid = []
        for n in _numbers(match.group(1)):
            if 1 <= n <= count:
                valid.append(n)
                if n not in used:
                    used.append(n)
            else:
                invalid += 1
        valid = list(dict.fromkeys(valid))
        return "[" + ", ".join(map(str, valid)) + "]" if valid else "\0"

    cleaned = _MARKER.sub(_replace, text)
    cleaned = re.sub(r"[ \t]*\0", "", cleaned)  # a removed marker takes its leading space along
    return cleaned, used, invalid


def attribute(text: str, passages: Sequence[Passage]) -> tuple[str, list[int]]:
    """Cite, for each sentence, the passage that states it, when the model cited nothing.

    Small models often answer correctly without markers. A sentence is credited to the passage
    holding most of its content words (at least ``MIN_SUPPORT`` of them, and two unless the
    sentence has only one) and every number it contains; a sentence no passage supports stays
    uncited, so an invented answer is still ``unsupported``.

    >>> p = Passage("c", "f.pdf", "WG gives 5 Hz to 5 kHz sine waves.", 9, "", "en", 1.0, 1)
    >>> attribute("The WG range is 5 Hz to 5 kHz.", [p])
    ('The WG range is 5 Hz to 5 kHz [1].', [1])
    >>> q = Passage("d", "f.pdf", "SEN is pulled up to 3.3 V by a 5.1 kΩ resistor.", 9, "", "en", 1.0, 1)
    >>> attribute("A 5.1 kΩ resistor pulls SEN up to 3.3 V.", [q])
    ('A 5.1 kΩ resistor pulls SEN up to 3.3 V [1].', [1])
    """
    vocab = [content_words(p.text) for p in passages]
    used: list[int] = []

    def _cite(match: re.Match[str]) -> str:
        sentence, end = match.group(1), match.group(2)
        words = content_words(sentence)
        numbers = set(re.findall(r"\d+(?:[.,]\d+)?", sentence))
        best, best_support = 0, 0.0
        for n, passage_words in enumerate(vocab, 1):
            shared = len(words & passage_words)
            support = shared / len(words) if words else 0.0
            if shared >= min(2, len(words)) and support > best_support and numbers <= passage_words:
                best, best_support = n, support
        if best_support < MIN_SUPPORT:
            return match.group(0)
        if best not in used:
            used.append(best)
        return f"{sentence} [{best}]{end}"

    return _CLAIM.sub(_cite, text), used


def _numbers(group: str) -> list[int]:
    """``"1, 3-5"`` -> [1, 3, 4, 5]; ranges longer than 20 are taken as their ends only."""
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group):
        ends = [int(x) for x in re.split(r"\s*[-–]\s*", part) if x]
        if len(ends) == 2 and 0 <= ends[1] - ends[0] <= 20:
            out.extend(range(ends[0], ends[1] + 1))
        else:
            out.extend(ends)
    return out


def _citing_sentence(text: str, number: int) -> str:
    """The first sentence of ``text`` that cites ``[number]`` (the whole text if none)."""
    for sentence in _SENTENCE.findall(text):
        for match in _MARKER.finditer(sentence):
            if number in _numbers(match.group(1)):
                return sentence
    return text


def _citation(number: int, passage: Passage, claim: str, whole: dict[str, str]) -> Citation:
    return Citation(
        number=number,
        chunk_id=passage.chunk_id,
        source=passage.source,
        page=passage.page,
        heading=passage.heading,
        quote=_quote(whole.get(passage.chunk_id, passage.text), claim),
    )


def _quote(passage_text: str, claim: str) -> str:
    """The passage sentence sharing most words with ``claim``; the passage's start if none does.

    >>> _quote("Plug it in. Press the red button to start.", "Press the red button [1].")
    'Press the red button to start.'
    """
    claim_words = set(_WORD.findall(fold(claim)))
    best, best_overlap = "", 0
    for sentence in _SENTENCE.findall(passage_text):
        overlap = len(claim_words & set(_WORD.findall(fold(sentence))))
        if overlap > best_overlap:
            best, best_overlap = sentence.strip(), overlap
    if best_overlap >= 2:
        return best[:MAX_QUOTE_CHARS]
    return passage_text.strip()[:MAX_QUOTE_CHARS]
