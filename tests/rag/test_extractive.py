"""The quote chosen when the model refuses after an "answer" decision (``rag.extractive``)."""

from __future__ import annotations

from ingest.records import Passage
from rag.extractive import extract


def _passage(text: str, rank: int = 1, lang: str = "es") -> Passage:
    return Passage(f"c{rank}", f"faq{rank}.txt", text, None, "", lang, 1.0 / rank, rank)


# Shaped like the Securing Debian FAQ as the dev set holds it: one answer runs on into the next
# questions of the page, each followed by its own answer.
FAQ_ES = (
    "Un sistema es sólo tan seguro como su administrador es capaz de hacerlo. "
    "Quiero ejecutar el servicio XYZ, ¿cuál debería elegir? 12.1.1.6. "
    "Debian ofrece varios servidores; elija el que tenga el mejor historial de seguridad y "
    "ejecútelo con un usuario sin privilegios. "
    "¿Son seguros todos los paquetes de Debian? No se puede garantizar."
)


def test_a_matching_question_in_the_passage_is_followed_by_its_answer():
    quote = extract("Quiero ejecutar el servicio XYZ, ¿cuál debería elegir?", [_passage(FAQ_ES)])

    assert quote is not None and quote.number == 1
    assert quote.quote.startswith("Debian ofrece varios servidores")
    assert "?" not in quote.quote  # neither the question echoed nor the next one


def test_the_quote_stops_before_the_next_question():
    quote = extract("¿Es seguro Debian como administrador del sistema?", [_passage(FAQ_ES)])

    assert quote is not None
    assert quote.quote.startswith("Un sistema es sólo tan seguro")
    assert "XYZ" not in quote.quote


def test_a_question_with_nothing_after_it_is_passed_over():
    questions_only = _passage("Am I compromised? Is the log file world-readable?", lang="en")
    answer = _passage("Strange root sessions in the logs come from cron jobs running as root.", 2, "en")

    quote = extract("I found strange root sessions in my logs: am I compromised?", [questions_only, answer])

    assert quote is not None and quote.number == 2
    assert quote.quote.startswith("Strange root sessions")


def test_only_questions_give_no_quote():
    assert extract("Is it blue?", [_passage("Is it blue? Is it red?", lang="en")]) is None
