"""detect_language: users' questions (short) and manual paragraphs (long), English and Spanish first."""

from __future__ import annotations

import pytest

from ingest.lang import LANGUAGES, detect_language


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("How do I measure voltage?", "en"),
        ("What is PV1?", "en"),
        ("How to install weechat on debian", "en"),
        ("¿Cómo mido un voltaje?", "es"),
        ("¿Qué es PV1?", "es"),
        ("Qué es SQ1", "es"),  # no punctuation, mostly a symbol: the stopword heuristic decides
        ("cómo instalo weechat en debian", "es"),
        ("medir resistencia con SEN", "es"),
        ("¿Cuál es la frecuencia máxima?", "es"),
        ("Comment mesurer une tension ?", "fr"),
        ("Wie messe ich Spannung?", "de"),
    ],
)
def test_short_questions(question: str, lang: str):
    assert detect_language(question) == lang


@pytest.mark.parametrize(
    ("paragraph", "lang"),
    [
        (
            "The constant current source can be switched ON and OFF under software control. "
            "The nominal value is 1.1 mA but may vary from unit to unit, due to component tolerances.",
            "en",
        ),
        (
            "La fuente de corriente constante se puede activar y desactivar por software. El valor "
            "nominal es de 1,1 mA, pero puede variar de una unidad a otra por las tolerancias.",
            "es",
        ),
        ("EXPERIMENTS FOR YOUNG ENGINEERS AND SCIENTISTS, WITH THE PHOENIX PROJECT", "en"),
    ],
)
def test_paragraphs(paragraph: str, lang: str):
    assert detect_language(paragraph) == lang


@pytest.mark.parametrize("text", ["", "   \n", "3.3V", "12 + 5 = 17", "→ ← ±", "x"])
def test_no_words_is_undetermined(text: str):
    assert detect_language(text) == "und"


def test_only_supported_codes_come_back():
    for text in ["Привет, как дела?", "こんにちは世界", "Voltage", "hello", "/server add libera"]:
        assert detect_language(text) in (*LANGUAGES, "und")


def test_long_text_is_cheap_and_stable():
    text = "Mida el voltaje con el osciloscopio y anote el resultado. " * 20000  # ~1.2 MB
    assert detect_language(text) == "es"
