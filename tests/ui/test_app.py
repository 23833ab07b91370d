"""The app's logic through Streamlit's ``AppTest``: no browser, no real models.

The deterministic fakes are handed to the app the way any ready-made part is: through
``st.session_state["docqa_embedder"]`` and ``["docqa_generator"]`` (see ``ui.resources``). The
index is a real one (``ingest.pipeline``) built with the fake embedder over a tiny manual.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.pipeline import ingest_folder
from ingest.settings import load_settings
from tests.fakes import HashEmbedder, ReplayGenerator
from tests.openai_server import running_openai_server
from tests.ui.test_markdown import render_markdown
from ui.feedback import export_questions, feedback_path
from ui.resources import EMBEDDER_KEY, GENERATOR_KEY
from ui.scope_panel import DOCUMENTS_KEY, LANGUAGES_KEY

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
MANUAL = """# Measuring

## Voltage
To measure a voltage, connect the red wire to input A1 and read the value on the screen.

## Frequency
The frequency counter on input IN1 reads square waves up to 100 kHz.
"""
MANUAL_ES = """# Medidas

## Voltaje
Para medir un voltaje, conecte el cable rojo a la entrada A1 y lea el valor en la pantalla.
"""


@pytest.fixture()
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture()
def index_dir(tmp_path: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    (docs / "manual.es.md").write_text(MANUAL_ES, encoding="utf-8")
    index = tmp_path / "index"
    settings = load_settings(env={}, index_dir=index, models_dir=tmp_path / "models")
    ingest_folder(docs, index, embedder, settings)
    _environment(monkeypatch, index, tmp_path)
    return index


def _environment(monkeypatch: pytest.MonkeyPatch, index: Path, tmp_path: Path) -> None:
    for name in ("DOCQA_CONFIG", "DOCQA_INDEX_DIR", "DOCQA_GENERATOR", "DOCQA_EMBEDDER", "DOCQA_UI_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCQA_INDEX", str(index))
    monkeypatch.setenv("DOCQA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)  # no stray docqa.toml


def _app(embedder=None, generator=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if embedder is not None:
        at.session_state[EMBEDDER_KEY] = embedder
    if generator is not None:
        at.session_state[GENERATOR_KEY] = generator
    return at.run()


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def test_missing_index_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, tmp_path / "no-index", tmp_path)
    at = _app(HashEmbedder(), ReplayGenerator())
    assert not at.exception
    assert "docqa ingest FOLDER" in _texts(at.info)
    assert "upload documents" in _texts(at.info)
    at.sidebar.radio(key="view").set_value("Documents").run()
    assert not at.exception
    assert "docqa ingest FOLDER" in _texts(at.info)


def test_empty_question_is_a_message(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator()
    at = _ask(_app(embedder, generator), "   ")
    assert "Type a question first" in _texts(at.warning)
    assert generator.prompts == []


def test_question_is_answered_with_citations_and_follow_up_uses_history(
    index_dir: Path, embedder: HashEmbedder
) -> None:
    generator = ReplayGenerator(
        "Connect the red wire to input A1 [1].",
        "Square waves up to 100 kHz [1].",
    )
    at = _ask(_app(embedder, generator), "How do I measure a voltage?")
    assert "Connect the red wire to input A1 [1]." in _texts(at.markdown)
    labels = [e.label for e in at.expander]
    assert labels and labels[0].startswith("[1] manual")
    assert "Voltage" in labels[0]  # a Markdown source is located by its heading
    assert "input A1" in str(generator.prompts[0])
    _ask(at, "And the frequency counter?")
    follow_up = generator.prompts[1]
    assert any(m.role == "assistant" and "red wire" in m.content for m in follow_up)
    assert "Square waves up to 100 kHz" in _texts(at.markdown)
    assert len(at.chat_message) == 4


def test_settings_reach_the_engine(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator("Conecte el cable rojo [1].")
    at = _app(embedder, generator)
    at.sidebar.slider(key="top_k").set_value(2)
    at.sidebar.radio(key="answer_language").set_value("es")
    _ask(at, "How do I measure a voltage?")
    prompt = "\n".join(m.content for m in generator.prompts[0])
    assert "[2]" in prompt and "[3]" not in prompt  # two passages, not the default one
    assert "answer in es" in _texts(at.caption)


def test_refusal_is_shown_with_the_closest_passages(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator("I could not find this in the documents.")
    at = _ask(_app(embedder, generator), "What is the price of a pizza in Rome?")
    assert "could not find this in the documents" in _texts(at.warning)
    assert "Closest passages" in _texts(at.caption)
    assert any("manual" in e.label for e in at.expander)


def test_a_generator_that_fails_to_load_is_a_message(
    index_dir: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCQA_GENERATOR", "no-such-model")
    at = _ask(_app(embedder), "How do I measure a voltage?")
    assert "could not be loaded" in _texts(at.error)
    assert "Closest passages" in _texts(at.caption)


def test_an_unreachable_server_is_a_message(index_dir: Path, embedder: HashEmbedder) -> None:
    at = _app(embedder)
    at.sidebar.selectbox(key="generator").set_value("openai").run()
    at.sidebar.text_input(key="openai_base_url").set_value("http://127.0.0.1:9/v1")
    at.sidebar.text_input(key="openai_model").set_value("served-model")
    _ask(at, "How do I measure a voltage?")
    assert "could not be finished" in _texts(at.error)
    assert "127.0.0.1:9" in _texts(at.error)


def test_the_api_key_goes_only_to_the_configured_server(
    index_dir: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_openai_server() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-secret")
        monkeypatch.setenv("DOCQA_GENERATOR", "openai")
        monkeypatch.setenv("DOCQA_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("DOCQA_OPENAI_MODEL", "m")
        at = _ask(_app(embedder), "How do I measure a voltage?")  # the configured server
        typed = server.url.replace("/v1", "/elsewhere/v1")
        at.sidebar.text_input(key="openai_base_url").set_value(typed)
        _ask(at, "How do I measure a voltage?")  # a URL typed in the sidebar
    sent = [(path, headers.get("Authorization")) for path, headers, _ in server.requests]
    assert sent == [
        ("/v1/chat/completions", "Bearer sk-operator-secret"),
        ("/elsewhere/v1/chat/completions", None),
    ]


def test_answers_and_source_labels_cannot_load_images_or_links(
    index_dir: Path, embedder: HashEmbedder
) -> None:
    docs = index_dir.parent / "docs"
    (docs / "evil.md").write_text(
        "# Voltage ![](http://attacker.example/h.png) [x](javascript:alert(1))\n\n"
        "To measure a voltage with the probe kit, connect the red wire to input A1.\n",
        encoding="utf-8",
    )
    ingest_folder(docs, index_dir, embedder, load_settings(env={}, index_dir=index_dir))
    reply = "![](http://attacker.example/a.png) Connect A1 [1]. <javascript:alert(1)>"
    at = _ask(_app(embedder, ReplayGenerator(reply, reply)), "How do I measure a voltage with the probe kit?")
    shown = [m.value for m in at.markdown] + [e.label for e in at.expander]
    assert any("evil.md" in label for label in shown)
    for text in shown:
        html = render_markdown(text)
        assert "<img" not in html and "<a " not in html, text


def test_reindex_picks_up_a_changed_file(index_dir: Path, embedder: HashEmbedder) -> None:
    manual = index_dir.parent / "docs" / "manual.md"
    manual.write_text(MANUAL + "\n## Current\nThe constant current source gives 1.1 mA.\n", encoding="utf-8")
    at = _app(embedder, ReplayGenerator())
    at.sidebar.radio(key="view").set_value("Documents").run()
    at.button(key="docqa_reindex_all").click().run()
    assert not at.exception, at.exception
    assert "1 updated, 1 unchanged" in _texts(at.success)


def test_feedback_is_stored_and_exported(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator("Connect the red wire to input A1 [1].")
    at = _ask(_app(embedder, generator), "How do I measure a voltage?")
    at.feedback[0].set_value(1).run()
    at.text_input(key="docqa_vote_comment_0").set_value("clear")
    at.button(key="FormSubmitter:docqa_vote_form_0-Send feedback").click().run()
    assert not at.exception, at.exception
    assert "feedback is saved" in _texts(at.caption)
    assert "1 helpful, 0 not helpful" in _texts(at.sidebar.caption)
    assert len(at.download_button) == 1
    (line,) = export_questions(feedback_path(index_dir)).splitlines()
    record = json.loads(line)
    assert record["question"] == "How do I measure a voltage?"
    assert record["gold"] == ["manual.md#Voltage"]
    assert record["comment"] == "clear"


def test_an_upload_while_the_index_is_busy_leaves_the_file_on_disk_as_indexed(
    index_dir: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock

    from ingest.layout import LOCK

    at = _app(embedder, ReplayGenerator())
    at.sidebar.radio(key="view").set_value("Documents").run()
    at.file_uploader[0].set_value(("zebra.md", b"# Zebra\n\nThe zebra code is 4417.\n", "text/markdown"))
    at.button(key="FormSubmitter:docqa_upload-Upload and index").click().run()
    saved = index_dir / "uploads" / "zebra.md"
    assert "1 added" in _texts(at.success) and b"4417" in saved.read_bytes()

    busy = FileLock(str(index_dir / LOCK), thread_local=False)
    new_version = ("zebra.md", b"# Zebra\n\nThe zebra code is 9999.\n", "text/markdown")
    with busy:  # e.g. a `docqa ingest` running
        at.file_uploader[0].set_value(new_version)
        at.button(key="FormSubmitter:docqa_upload-Upload and index").click().run()
    assert not at.exception, at.exception
    assert b"4417" in saved.read_bytes()  # the indexed version is still the one on disk
    assert "nothing was saved" in _texts(at.error)

    # The lock taken between the check and the indexing: the old file is put back.
    monkeypatch.setattr("ui.documents.index_busy", lambda index_dir: False)
    with busy:
        at.file_uploader[0].set_value(new_version)
        at.button(key="FormSubmitter:docqa_upload-Upload and index").click().run()
    assert not at.exception, at.exception
    assert b"4417" in saved.read_bytes()
    assert "nothing was saved" in _texts(at.error)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["zebra.md"]  # no temporaries left


def test_an_access_token_is_asked_before_anything_is_shown(
    index_dir: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCQA_UI_TOKEN", "s3cret-token")
    at = _app(embedder, ReplayGenerator("Connect the red wire to input A1 [1]."))
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Access token"]
    assert not at.chat_input and not at.sidebar.radio and not at.dataframe
    at.text_input(key="docqa_token").set_value("guess").run()
    assert "not the access token" in _texts(at.error) and not at.chat_input
    at.text_input(key="docqa_token").set_value("s3cret-token").run()
    assert not at.exception, at.exception
    assert at.chat_input and not [t for t in at.text_input if t.label == "Access token"]
    _ask(at, "How do I measure a voltage?")
    assert "Connect the red wire" in _texts(at.markdown)


def test_documents_upload_and_delete(index_dir: Path, embedder: HashEmbedder) -> None:
    at = _app(embedder, ReplayGenerator())
    at.sidebar.radio(key="view").set_value("Documents").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["document"]) == ["manual.es.md", "manual.md"]
    at.file_uploader[0].set_value(
        [("../../evil name.txt", b"The zebra code is 4417.", "text/plain"), ("tool.exe", b"MZ", "x")]
    )
    at.button(key="FormSubmitter:docqa_upload-Upload and index").click().run()
    assert not at.exception, at.exception
    assert "1 added" in _texts(at.success)
    assert "tool.exe: type .exe is not supported" in _texts(at.error)
    assert (index_dir / "uploads" / "evil name.txt").is_file()
    assert "evil name.txt" in list(at.dataframe[0].value["document"])

    at.selectbox(key="docqa_doc").set_value("evil name.txt").run()
    at.checkbox(key="docqa_confirm_delete").check().run()
    at.button[-1].click().run()
    assert not at.exception, at.exception
    assert "Deleted evil name.txt" in _texts(at.success)
    assert "evil name.txt" not in list(at.dataframe[0].value["document"])
    assert not (index_dir / "uploads" / "evil name.txt").exists()
    assert at.checkbox(key="docqa_confirm_delete").value is False


def test_an_upload_becomes_answerable(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator("The zebra code is 4417 [1].")
    at = _app(embedder, generator)
    at.sidebar.radio(key="view").set_value("Documents").run()
    at.file_uploader[0].set_value(("zebra.md", b"# Zebra\n\nThe zebra code is 4417.\n", "text/markdown"))
    at.button(key="FormSubmitter:docqa_upload-Upload and index").click().run()
    at.sidebar.radio(key="view").set_value("Chat").run()
    _ask(at, "What is the zebra code?")
    assert "zebra.md" in at.expander[0].label
    assert "4417" in str(generator.prompts[0])


def test_the_sidebar_scope_keeps_the_chat_to_the_picked_manual(
    index_dir: Path, embedder: HashEmbedder
) -> None:
    generator = ReplayGenerator("Conecte el cable rojo [1].")
    at = _app(embedder, generator)
    assert at.sidebar.multiselect(key=DOCUMENTS_KEY).options == ["manual.es.md", "manual.md"]
    at.sidebar.multiselect(key=DOCUMENTS_KEY).set_value(["manual.es.md"]).run()
    _ask(at, "How do I measure a voltage?")
    prompt = "\n".join(m.content for m in generator.prompts[0])
    assert "Para medir un voltaje" in prompt and "red wire" not in prompt
    assert "Answering only from manual.es.md." in _texts(at.caption)
    assert all("manual.es.md" in e.label for e in at.expander)

    at.sidebar.multiselect(key=LANGUAGES_KEY).set_value(["fr"]).run()
    _ask(at, "How do I measure a voltage?")
    assert "hold no passage in fr" in _texts(at.warning)
    assert len(generator.prompts) == 1
    assert len(at.run().chat_message) == 2  # the question that matched nothing is not kept


def test_ask_about_this_manual_starts_a_chat_scoped_to_it(index_dir: Path, embedder: HashEmbedder) -> None:
    generator = ReplayGenerator("First answer [1].", "Connect the red wire to input A1 [1].")
    at = _ask(_app(embedder, generator), "How do I measure a voltage?")
    at.sidebar.multiselect(key=LANGUAGES_KEY).set_value(["es"]).run()
    at.sidebar.radio(key="view").set_value("Documents").run()
    at.selectbox(key="docqa_doc").set_value("manual.md").run()
    next(b for b in at.button if b.label == "Ask about this manual").click().run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="view").value == "Chat" and not at.chat_message  # a new conversation
    assert at.sidebar.multiselect(key=DOCUMENTS_KEY).value == ["manual.md"]
    assert at.sidebar.multiselect(key=LANGUAGES_KEY).value == []
    _ask(at, "¿Cómo mido un voltaje?")
    prompt = "\n".join(m.content for m in generator.prompts[1])
    assert "red wire" in prompt and "Para medir" not in prompt
