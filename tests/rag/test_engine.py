"""The engine: retrieval, refusal without the model, streaming, follow-ups, errors.

Unit tests run the engine over the in-memory index with the hash embedder and the replay
generator; the integration tests build a real index folder with ``ingest.pipeline``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rag
from ingest.errors import ConfigError, EmbedderMismatch, EmptyQuestion, IndexNotFound
from ingest.records import Answer, Message
from ingest.settings import Settings
from rag.engine import Engine, open_engine
from rag.refusal import RefusalModel
from tests.fakes import DoubtingGenerator, HashEmbedder, ReplayGenerator


def _settings(tmp_path: Path, **changes) -> Settings:
    base = Settings(index_dir=tmp_path / "index", models_dir=tmp_path / "models", generator="/nonexistent")
    # The hash embedder matches words, not meaning: these tests rank with the lexical side's
    # usual share, whatever the shipped default weight is (chosen for a real embedder).
    return base.replace(**({"min_relevance": 0.0, "top_k": 3, "dense_weight": 0.6} | changes))


def test_ask_returns_a_cited_answer(tmp_path, index, embedder):
    generator = ReplayGenerator("Connect the signal to A1 and read the value in volts [1].")
    engine = Engine(_settings(tmp_path), index, embedder, generator)
    answer = engine.ask("How do I measure a voltage?")
    assert answer.citations[0].chunk_id == "c001" and answer.citations[0].page == 2
    assert not answer.refused and not answer.unsupported and answer.lang == "en"
    assert len(answer.passages) == 3 and answer.passages[0].chunk_id == "c001"
    prompt = generator.prompts[0]
    assert prompt[0].role == "system" and "Question: How do I measure a voltage?" in prompt[-1].content
    t = answer.timings
    assert 0 <= t.retrieve <= t.first_token <= t.total and t.prompt_tokens > 0 and t.completion_tokens > 0


def test_stream_yields_pieces_then_the_answer_last(tmp_path, index, embedder):
    engine = Engine(_settings(tmp_path), index, embedder, ReplayGenerator("It is in volts [1] [5]."))
    items = list(rag.stream("How do I measure a voltage?", engine))
    assert all(isinstance(i, str) for i in items[:-1]) and isinstance(items[-1], Answer)
    assert "".join(items[:-1]) == "It is in volts [1] [5]."
    assert items[-1].text == "It is in volts [1]." and items[-1].invalid_citations == 1


def test_low_relevance_refuses_in_the_question_language_without_the_model(tmp_path, index, embedder):
    generator = ReplayGenerator("should not be used")
    engine = Engine(_settings(tmp_path, min_relevance=0.99), index, embedder, generator)
    answer = engine.ask("¿Cuál es la garantía del producto?")
    assert answer.refused and answer.text == "No encontré esto en los documentos." and answer.lang == "es"
    assert answer.passages and not generator.prompts
    english = engine.ask("What is the warranty period?")
    assert english.text == "I could not find this in the documents."


def test_the_model_saying_it_cannot_answer_sets_refused(tmp_path, index, embedder):
    engine = Engine(
        _settings(tmp_path), index, embedder, ReplayGenerator("I could not find this in the documents.")
    )
    assert rag.ask("What is the voltage warranty?", engine).refused


def test_answer_language_setting_and_argument(tmp_path, index, embedder):
    generator = ReplayGenerator("a [1]", "b [1]")
    engine = Engine(_settings(tmp_path, answer_language="es"), index, embedder, generator)
    assert engine.ask("How do I measure a voltage?").lang == "es"
    assert "Answer in Spanish" in generator.prompts[0][-1].content
    assert engine.ask("How do I measure a voltage?", language="en").lang == "en"


def test_follow_up_uses_the_conversation_for_retrieval_only(tmp_path, index, embedder):
    generator = ReplayGenerator("From 5 Hz to 5 kHz [1].")
    engine = Engine(_settings(tmp_path), index, embedder, generator)
    history = [
        Message("user", "What does the sine wave generator WG produce?"),
        Message("assistant", "A sine [1]."),
    ]
    alone = engine.retrieve("And its range?")
    followed = engine.retrieve("And its range?", history=history)
    assert followed[0].chunk_id == "c002" and alone[0].chunk_id != "c002"
    answer = engine.ask("And its range?", history=history)
    assert generator.prompts[0][-1].content.count("Question: And its range?") == 1
    prompt = generator.prompts[0]
    assert [m.role for m in prompt[-3:]] == ["user", "assistant", "user"]
    assert prompt[-3].content == "What does the sine wave generator WG produce?"
    assert answer.lang == "en"


def test_a_change_of_topic_keeps_its_own_passages(tmp_path, index, embedder):
    engine = Engine(_settings(tmp_path), index, embedder, ReplayGenerator())
    history = [Message("user", "What does the sine wave generator WG produce?"), Message("assistant", "x")]
    alone = engine.retrieve("How do I install the software on Debian?")
    assert engine.retrieve("How do I install the software on Debian?", history=history) == alone
    assert alone[0].chunk_id == "c005"


def test_short_follow_up_keeps_the_conversation_language(tmp_path, index, embedder):
    engine = Engine(_settings(tmp_path), index, embedder, ReplayGenerator("5 Hz [1]."))
    history = [Message("user", "¿Qué produce el generador de onda sinusoidal?"), Message("assistant", "x")]
    assert engine.ask("¿Y WG?", history=history).lang == "es"


@pytest.mark.parametrize("question", ["", "   ", "\n"])
def test_empty_question_is_an_error(tmp_path, index, embedder, question):
    engine = Engine(_settings(tmp_path), index, embedder, ReplayGenerator())
    with pytest.raises(EmptyQuestion):
        engine.ask(question)
    with pytest.raises(EmptyQuestion):
        engine.retrieve(question)


def test_generator_is_loaded_only_when_needed(tmp_path, index, embedder):
    from ingest.errors import DocqaError

    engine = Engine(_settings(tmp_path), index, embedder)
    assert engine.retrieve("voltage")
    with pytest.raises(DocqaError, match="nonexistent"):
        engine.ask("How do I measure a voltage?")


def test_close_closes_the_index(tmp_path, index, embedder):
    with Engine(_settings(tmp_path), index, embedder, ReplayGenerator()):
        pass
    assert index.closed


# -- with a real index folder ------------------------------------------------------------------


@pytest.fixture
def real_index(tmp_path):
    from ingest.pipeline import ingest_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scope.txt").write_text(
        "The oscilloscope shows four channels. Set the timebase with the slider.", encoding="utf-8"
    )
    (docs / "voltaje.txt").write_text(
        "Para medir un voltaje, conecte la señal a A1 y lea el valor en voltios.", encoding="utf-8"
    )
    settings = _settings(tmp_path, embedder="hash-embedder", chunk_tokens=32, chunk_overlap=4)
    ingest_folder(docs, settings.index_dir, HashEmbedder(), settings)
    return settings


def test_open_engine_on_a_real_index(real_index):
    engine = open_engine(real_index, embedder=HashEmbedder(), generator=ReplayGenerator("En A1 [1]."))
    with engine:
        passages = engine.retrieve("¿Cómo mido el voltaje? senal", k=2)
        assert passages[0].source.endswith("voltaje.txt") and passages[0].lexical_score is not None
        answer = engine.ask("¿Cómo mido un voltaje?")
        assert answer.citations[0].source.endswith("voltaje.txt") and answer.lang == "es"


def test_open_engine_errors(real_index, tmp_path):
    with pytest.raises(IndexNotFound, match="docqa ingest"):
        open_engine(real_index.replace(index_dir=tmp_path / "nothing"), embedder=HashEmbedder())
    with pytest.raises(EmbedderMismatch, match="hash-embedder"):
        open_engine(real_index, embedder=HashEmbedder(name="other"))
    with pytest.raises(EmbedderMismatch, match="all-minilm-l6-v2"):  # checked before loading it
        open_engine(real_index.replace(embedder="all-minilm-l6-v2"))


def test_the_model_doubting_refuses_without_decoding(tmp_path, index, embedder):
    generator = DoubtingGenerator(0.6, "Invented answer [1].")
    engine = Engine(_settings(tmp_path, refusal_probability=0.5), index, embedder, generator)
    answer = engine.ask("¿Cómo mido un voltaje?")
    assert answer.refused and answer.text == "No encontré esto en los documentos."
    assert answer.refusal_score == 0.6 and generator.asked == ["No encontré esto en los documentos."]
    assert not generator.prompts and generator.replies  # nothing decoded
    assert answer.passages and answer.timings.prompt_tokens > 0


def test_the_model_confident_answers_and_reports_its_score(tmp_path, index, embedder):
    generator = DoubtingGenerator(0.2, "Connect the signal to A1 [1].")
    engine = Engine(_settings(tmp_path, refusal_probability=0.5), index, embedder, generator)
    answer = engine.ask("How do I measure a voltage?")
    assert not answer.refused and answer.citations and answer.refusal_score == 0.2


def test_refusal_probability_one_never_asks_the_model(tmp_path, index, embedder):
    generator = DoubtingGenerator(1.0, "Connect the signal to A1 [1].")
    engine = Engine(_settings(tmp_path, refusal_probability=1.0), index, embedder, generator)
    answer = engine.ask("How do I measure a voltage?")
    assert not answer.refused and not generator.asked and answer.refusal_score is None


def test_warm_up_probes_a_prompt_in_each_language_and_decodes_nothing(tmp_path, index, embedder):
    generator = DoubtingGenerator(0.2, "Connect the signal to A1 [1].")
    engine = Engine(_settings(tmp_path), index, embedder, generator)
    assert engine.warm_up() >= 0.0
    assert generator.asked == [
        "I could not find this in the documents.",
        "No encontré esto en los documentos.",
    ]
    assert not generator.prompts and generator.replies  # nothing decoded, the reply still queued
    plain = ReplayGenerator("Connect the signal to A1 [1].")  # no probe (an OpenAI server): nothing to do
    Engine(_settings(tmp_path), index, embedder, plain).warm_up()
    assert not plain.prompts and plain.replies


def test_a_fitted_decision_refuses_on_the_signals_together(tmp_path, index, embedder):
    # Weights on standardised features: the refusal probability's logit (3rd feature) decides.
    model = RefusalModel("hash-embedder", "doubting", 0.0, (0,) * 5, (1,) * 5, (0, 0, 2.0, 0, 0), 0.0, 0.5)
    settings = _settings(tmp_path)  # refusal_probability -1: the fitted decision
    doubting = DoubtingGenerator(0.7, "Invented [1].")
    answer = Engine(settings, index, embedder, doubting, refusal_model=model).ask(
        "How do I measure a voltage?"
    )
    assert answer.refused and answer.refusal_score == 0.7 and not doubting.prompts
    confident = DoubtingGenerator(0.2, "Connect the signal to A1 [1].")
    answer = Engine(settings, index, embedder, confident, refusal_model=model).ask(
        "How do I measure a voltage?"
    )
    assert not answer.refused and answer.refusal_score == 0.2
    assert confident.avoided == ["I could not find this in the documents."]  # decided: no refusal sentence
    # No fitted decision for this pair: the model is not asked, only its own text can refuse.
    unasked = DoubtingGenerator(0.9, "Connect the signal to A1 [1].")
    answer = Engine(settings, index, embedder, unasked).ask("How do I measure a voltage?")
    assert not answer.refused and not unasked.asked and answer.refusal_score is None
    assert unasked.avoided == [""]  # nothing decided: the model may refuse on its own


def test_a_refusal_after_an_answer_decision_becomes_a_cited_quote(tmp_path, index, embedder):
    model = RefusalModel("hash-embedder", "doubting", 0.0, (0,) * 5, (1,) * 5, (0, 0, 2.0, 0, 0), 0.0, 0.5)
    settings = _settings(tmp_path)
    generator = DoubtingGenerator(0.2, "No encontrado esto en los documentos.")
    answer = Engine(settings, index, embedder, generator, refusal_model=model).ask("¿Cómo mido un voltaje?")
    assert not answer.refused and answer.extracted and len(answer.citations) == 1
    assert answer.text.startswith('Los documentos dicen: "') and answer.text.endswith("[1]")
    quoted = answer.text.split('"')[1]
    assert quoted in answer.passages[0].text or quoted.rstrip(" …") in " ".join(
        answer.passages[0].text.split()
    )
    # Without a decision that weighed the model, its own refusal stands.
    unasked = DoubtingGenerator(0.2, "No encontrado esto en los documentos.")
    answer = Engine(settings, index, embedder, unasked).ask("¿Cómo mido un voltaje?")
    assert answer.refused and not answer.extracted


def test_an_uncited_answer_cites_the_passage_closest_in_meaning(tmp_path, index, embedder):
    question = "How do I measure a voltage?"
    reply = "Conecte la señal a A1."  # one word in common: word matching cannot credit it
    gated = _settings(tmp_path, min_relevance=0.05)  # retrieval's gate, calibrated for this embedder
    answer = Engine(gated, index, embedder, ReplayGenerator(reply)).ask(question)
    assert not answer.unsupported and answer.text == "Conecte la señal a A1 [1]."
    assert answer.citations[0].chunk_id == answer.passages[0].chunk_id
    # Less close than retrieval's gate asks of a relevant passage: left uncited.
    answer = Engine(gated, index, embedder, ReplayGenerator("Bananas are yellow.")).ask(question)
    assert not answer.refused and answer.unsupported and not answer.citations
    # No calibrated gate (0): no citation by meaning at all.
    answer = Engine(_settings(tmp_path), index, embedder, ReplayGenerator(reply)).ask(question)
    assert answer.unsupported and not answer.citations


def test_refusal_probability_setting_is_validated(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(ConfigError, match="refusal_probability"):
        settings.replace(refusal_probability=1.5)


def test_a_longer_list_ranks_its_head_as_the_answer_does(tmp_path):
    """``docqa eval`` scores a top 10 while the answer is shown ``top_k`` passages: fusion's
    min-max scaling depends on how many candidates each search returns, so both must come from
    the same candidates or the eval's rank 1 is not the passage the answer saw."""
    import random

    from tests.rag.conftest import MemoryIndex, make_chunk

    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)]
    chunks = [make_chunk(i, " ".join(rng.choices(words, k=12))) for i in range(60)]
    embedder = HashEmbedder()
    engine = Engine(_settings(tmp_path, top_k=1), MemoryIndex(chunks, embedder), embedder, ReplayGenerator())
    questions = [" ".join(rng.choices(words, k=4)) for _ in range(80)]
    heads = [(engine.retrieve(q)[0].chunk_id, engine.retrieve(q, k=10)[0].chunk_id) for q in questions]
    assert all(shown == listed for shown, listed in heads), sum(a != b for a, b in heads)
