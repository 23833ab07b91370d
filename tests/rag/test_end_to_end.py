"""End to end with the real default models on real manual pages (slow: each answer costs seconds).

Pages 8-12 of the eyes17 manual in English and Spanish are cut into small PDFs (page 8 becomes
page 1), indexed with EmbeddingGemma, and asked with Qwen2.5-Coder-0.5B under the default settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.lang import detect_language
from ingest.settings import Settings
from rag.engine import open_engine

MANUALS = Path(__file__).resolve().parents[2] / "corpus" / "eyes17"
FIRST_PAGE = 8  # page 1 of the cut PDFs is page 8 of the manuals


def _cut(source: Path, target: Path, first: int, last: int) -> None:
    import pypdfium2 as pdfium

    target.parent.mkdir(parents=True, exist_ok=True)
    doc, out = pdfium.PdfDocument(source), pdfium.PdfDocument.new()
    out.import_pages(doc, list(range(first - 1, last)))
    out.save(target)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, gemma, qwen, models_dir):
    from ingest.pipeline import ingest_folder

    root = tmp_path_factory.mktemp("e2e")
    for lang in ("en", "es"):
        _cut(MANUALS / lang / "eyes17.pdf", root / "docs" / lang / "eyes17.pdf", FIRST_PAGE, FIRST_PAGE + 4)
    settings = Settings(index_dir=root / "index", models_dir=models_dir).replace(max_new_tokens=64)
    ingest_folder(root / "docs", settings.index_dir, gemma, settings)
    with open_engine(settings, embedder=gemma, generator=qwen) as engine:
        yield engine


def _pages(answer, lang: str) -> set[int]:
    return {c.page + FIRST_PAGE - 1 for c in answer.citations if c.source.startswith(f"{lang}/")}


@pytest.mark.slow
def test_english_question_cites_the_right_page_in_english(engine):
    answer = engine.ask("What is the frequency range of the sine/triangular wave generator WG?")
    assert not answer.refused, answer.text
    compact = answer.text.replace(" ", "").replace("KHz", "kHz")  # "5 Hz" and "5Hz" alike
    assert "5Hz" in compact and "5kHz" in compact, answer.text
    assert 9 in _pages(answer, "en"), (answer.text, answer.citations)
    assert answer.lang == "en" and detect_language(answer.text) == "en"
    assert answer.timings.first_token < answer.timings.total


@pytest.mark.slow
def test_spanish_question_cites_the_right_page_in_spanish(engine):
    answer = engine.ask("¿Qué rango de voltaje admiten las entradas A1 y A2?")
    assert not answer.refused, answer.text
    assert "16" in answer.text, answer.text
    # Page 8 ("Las entradas A1 y A2 deben estar en el intervalo ±16 los voltios") and page 10
    # ("Entradas analógicas ±16V, A1 & A2: Estos pueden medir voltajes alrededor de ±16 V") both
    # state it; fusion at dense weight 0.9 ranks page 10 first.
    assert _pages(answer, "es") & {8, 9, 10}, (answer.text, answer.citations)
    assert answer.lang == "es", answer.text
    assert detect_language(answer.text) in ("es", "und"), answer.text  # "und": a bare value, "±16 V"


@pytest.mark.slow
@pytest.mark.parametrize(
    "question", ["What is the capital of Australia?", "¿Quién ganó la Copa Mundial de 2010?"]
)
def test_unrelated_question_is_refused_without_the_model(engine, question):
    answer = engine.ask(question)
    assert answer.refused and answer.timings.prompt_tokens == 0, answer.text
    assert answer.passages  # the closest passages are still shown


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known gap since dense weight 0.9 (chosen held out; bench/README.md): on these 10 pages "
    "the passage shown is another chunk of page 12, on which the model doubts little (refusal "
    "probability 0.02 vs 0.26 at 0.6), so the decision (0.21 < 0.27) lets it through and the model "
    "invents pairing steps. On the whole sample corpus the same question is refused",
)
def test_question_about_the_product_that_the_manual_does_not_answer_is_refused(engine):
    """The passages look relevant (retrieval lets it through); the fitted decision (the model's
    doubt with retrieval's signals) refuses before decoding. (On the whole sample corpus the
    model's greedy answer invents pairing steps.)"""
    answer = engine.ask("How do I pair the ExpEYES-17 with a phone over Bluetooth?")
    assert answer.refused and answer.text == "I could not find this in the documents.", answer.text
    assert answer.timings.prompt_tokens > 0  # the model was asked: not retrieval's gate
    assert answer.refusal_score is not None and engine.refusal_model is not None  # the fitted decision
    assert answer.timings.completion_tokens == 0  # refused before decoding


@pytest.mark.slow
def test_spanish_question_the_manual_does_not_answer_gets_no_invented_answer(engine):
    """The fitted decision lets this one through (its Spanish refusal recall is 0.92 held out)
    and the model then refuses in its own words; the decision overrules it (measured better on
    held-out products, bench/README.md) and the answer quotes the best passage verbatim, marked
    as a quote: a wrong pick is visible as such, never invented text."""
    answer = engine.ask("¿Cuál es el periodo de garantía del ExpEYES-17?")
    assert answer.timings.prompt_tokens > 0 and answer.refusal_score is not None
    if answer.refused:
        assert answer.text == "No encontré esto en los documentos.", answer.text
        return
    assert answer.extracted and answer.text.startswith('Los documentos dicen: "'), answer.text
    quote = answer.text.split('"')[1].rstrip(" …")
    shown = " ".join(" ".join(p.text.split()) for p in answer.passages)
    assert " ".join(quote.split()) in shown, (quote, shown)
    assert len(answer.citations) == 1 and answer.citations[0].source.startswith("es/")
