"""Answers: citation markers resolved, invalid ones removed and counted, refusals recognised."""

from __future__ import annotations

import pytest

from ingest.records import Passage, Timings
from rag.answer import build_answer, clean_citations
from rag.refusal import is_refusal


def _passages(n: int = 3) -> list[Passage]:
    texts = [
        "Connect the probe to A1. The voltage is shown in volts on the display.",
        "The generator WG gives a sine wave from 5 Hz to 5 kHz.",
        "Install with apt install eyes17.",
    ]
    return [Passage(f"id{i}", f"doc{i}.pdf", texts[i % 3], i + 10, "", "en", 1.0, i + 1) for i in range(n)]


@pytest.mark.parametrize(
    ("raw", "text", "numbers", "invalid"),
    [
        ("A [1].", "A [1].", [1], 0),
        ("A [1, 2] and B [2].", "A [1, 2] and B [2].", [1, 2], 0),
        ("A [2][1].", "A [2][1].", [2, 1], 0),
        ("A [1-3].", "A [1, 2, 3].", [1, 2, 3], 0),
        ("A [4].", "A.", [], 1),
        ("A [1, 5] B [0].", "A [1] B.", [1], 2),
        ("A [ 2 ;3 ].", "A [2, 3].", [2, 3], 0),
        ("See [note] and [1a].", "See [note] and [1a].", [], 0),
    ],
)
def test_clean_citations(raw, text, numbers, invalid):
    assert clean_citations(raw, 3) == (text, numbers, invalid)


def test_answer_resolves_citations_with_quote_and_location():
    timings = Timings(retrieve=0.1, total=1.0)
    answer = build_answer(
        "q", "The voltage is shown in volts [1]. Also [3] and [9].", _passages(), lang="en", timings=timings
    )
    assert answer.text == "The voltage is shown in volts [1]. Also [3] and."
    assert [c.number for c in answer.citations] == [1, 3]
    first = answer.citations[0]
    assert (first.chunk_id, first.source, first.page) == ("id0", "doc0.pdf", 10)
    assert first.quote == "The voltage is shown in volts on the display."
    assert answer.citations[1].quote == "Install with apt install eyes17."
    assert answer.invalid_citations == 1
    assert not answer.unsupported and not answer.refused
    assert answer.timings is timings and len(answer.passages) == 3


def test_answer_without_valid_citation_is_unsupported():
    answer = build_answer("q", "It is 5 volts [7].", _passages())
    assert answer.unsupported and not answer.citations and answer.invalid_citations == 1
    assert answer.text == "It is 5 volts."


def test_all_retrieved_passages_are_kept_even_when_fewer_were_shown():
    answer = build_answer("q", "Yes [1].", _passages(1), passages=_passages(3))
    assert len(answer.passages) == 3 and answer.citations[0].chunk_id == "id0"


@pytest.mark.parametrize(
    "text",
    [
        "I could not find this in the documents.",
        "No encontré esto en los documentos.",
        "No encontre esto en los documentos",
        "I'm sorry, but the passages do not contain information about the warranty.",
        "The documents don't mention that; I cannot answer.",
        "Lo siento, los documentos no mencionan la garantía.",
        "No puedo responder con estos pasajes.",
        "I couldn’t find this in the documents.",
        "No encontrado esto en los documentos.",  # Qwen 0.5B's wording once kept from the exact one
        "No se encontró esto en los documentos.",  # and its other wordings on the dev set
        "No hay encontré esto en los documentos.",
        "I would not find this in the documents.",
    ],
)
def test_refusals_in_english_and_spanish(text):
    assert is_refusal(text)
    answer = build_answer("q", text, _passages(), lang="es")
    assert answer.refused and not answer.unsupported
    assert answer.text == "No encontré esto en los documentos." and not answer.citations  # one wording


@pytest.mark.parametrize(
    "text",
    [
        "Connect the probe to A1 [1].",
        "El generador produce una onda sinusoidal [2].",
        "Yes, it can [1].",
        "Si no se encuentra el archivo, WeeChat usa el valor por defecto [1].",
    ],
)
def test_ordinary_answers_are_not_refusals(text):
    assert not is_refusal(text)
    assert not build_answer("q", text, _passages()).refused


def test_long_cited_answer_mentioning_absence_is_not_a_refusal():
    text = (
        "The generator gives a sine wave from 5 Hz to 5 kHz [2]. The passages do not contain the "
        "exact amplitude accuracy, but the display shows the voltage in volts once the probe is "
        "connected to A1, which lets you check it yourself with the oscilloscope view [1]."
    )
    answer = build_answer("q", text, _passages())
    assert not answer.refused and len(answer.citations) == 2


def test_quote_comes_from_the_whole_chunk_when_the_prompt_held_a_window() -> None:
    full = Passage(
        chunk_id="c1",
        source="manual.pdf",
        text="IMPORTANT :\nThe external voltages must be within the allowed limits. Inputs A1 and A2 must\n"
        "be within ±16 volts range and IN1 must be in 0 to 3.3V range. Exceeding them may damage it.",
        page=8,
        heading="",
        lang="en",
        score=1.0,
        rank=1,
    )
    window = Passage(
        **{
            **{f: getattr(full, f) for f in full.__slots__},
            "text": "IMPORTANT :\nThe external voltages must be within the allowed limits. …",
        }
    )
    answer = build_answer("q", "Inputs A1 and A2 accept ±16 volts range [1].", [window], passages=[full])
    assert answer.citations[0].quote.startswith("Inputs A1 and A2 must\nbe within ±16 volts range")
    assert answer.citations[0].quote.endswith("3.3V range.")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5.1 kΩ.", "5.1 kΩ [1]."),
        ("A 5.1 kΩ resistor to 3.3 V", "A 5.1 kΩ resistor to 3.3 V [1]"),
        ("import eyes17.eyes\np = eyes17.eyes.open()", "import eyes17.eyes [1]\np = eyes17.eyes.open() [1]"),
        ("Then /set irc.server.libera.autoconnect on", "Then /set irc.server.libera.autoconnect on [1]"),
    ],
)
def test_credited_markers_never_land_inside_numbers_or_dotted_names(raw, expected):
    """A '.' inside "5.1" or "irc.server" does not end a sentence (the eval saw "5 [2].1 kΩ")."""
    passage = Passage(
        "c", "f.pdf",
        "SEN is connected to 3.3 V through a 5.1 kΩ resistor. Programs start with import eyes17.eyes "
        "and p = eyes17.eyes.open(). Type /set irc.server.libera.autoconnect on to connect at start.",
        10, "", "en", 1.0, 1,
    )  # fmt: skip
    assert build_answer("q", raw, [passage]).text == expected
