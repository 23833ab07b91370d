"""Questions in one language answered by a document in the other (slow: the real default models).

Four WeeChat FAQ answers (tests/fixtures/crosslang: three English, one Spanish) are indexed with
EmbeddingGemma and asked with the default generator on llama.cpp (the runtime these outcomes were
checked with): a Spanish question whose answer is only in an English document, and the reverse. The answer must come from that document, cited,
in the question's language.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.lang import detect_language
from ingest.settings import Settings
from rag.engine import open_engine

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "crosslang"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, gemma, models_dir):
    from ingest.pipeline import ingest_folder

    root = tmp_path_factory.mktemp("crosslang")
    settings = Settings(index_dir=root / "index", models_dir=models_dir, generator_runtime="llama.cpp")
    settings = settings.replace(max_new_tokens=64)
    ingest_folder(DOCS, settings.index_dir, gemma, settings)
    with open_engine(settings, embedder=gemma) as engine:
        yield engine


def _own_words(text: str) -> str:
    """The answer without its quotes and citation markers: the words written in its language."""
    return re.sub(r'"[^"]*"|\[\d+(?:,\s*\d+)*\]', " ", text).strip()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "lang", "gold", "fact"),
    [
        # Shown three passages, Qwen 0.5B answered this from the Spanish answer ranked 2nd (cosine
        # 0.04) instead of the English one ranked 1st (0.56); one passage (top_k 1) mended it.
        ("¿Cómo puedo cambiar la zona horaria?", "es", "weechat-faq-en-021.txt", "TZ"),
        pytest.param(
            "Why choose WeeChat? X-Chat and Irssi are so good...",
            "en",
            "weechat-faq-es-002.txt",
            "",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known gap: at dense weight 0.9 the Spanish gold is ranked first (cosine 0.57) "
                "and cited, but Qwen 0.5B copies its Spanish words ('Porque WeeChat es muy ligero "
                "...') into the English answer. At 0.6 fusion ranked an English answer first (0.42) "
                "and the decision refused",
            ),
        ),
    ],
)
def test_the_other_languages_document_answers_in_the_questions_language(engine, question, lang, gold, fact):
    answer = engine.ask(question)
    assert not answer.refused, answer.text
    assert answer.lang == lang
    assert gold in {c.source for c in answer.citations}, (answer.text, answer.citations)
    assert fact in answer.text, answer.text
    words = _own_words(answer.text)
    assert detect_language(words) in (lang, "und"), answer.text
