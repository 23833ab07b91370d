"""``docqa ask``: errors as one line and an exit code; a real streamed answer with citations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import ClassVar

import pytest
from click.testing import CliRunner

from ingest.errors import EmptyQuestion
from rag.cli import cli


def _docqa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_missing_index_is_one_line_and_non_zero(tmp_path):
    result = _docqa("ask", "How do I measure a voltage?", "--index", str(tmp_path / "none"))
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: no index at {tmp_path / 'none'}; run 'docqa ingest FOLDER' first"
    ]


def test_empty_question_fails_before_loading_anything(tmp_path):
    result = CliRunner().invoke(cli, ["ask", "  ", "--index", str(tmp_path)])
    assert isinstance(result.exception, EmptyQuestion)


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["ask", "--help"])
    assert result.exit_code == 0 and 'docqa ask "How do I measure a voltage?"' in result.output


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory, minilm):
    from ingest.pipeline import ingest_folder
    from ingest.settings import Settings

    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    docs.mkdir()
    (docs / "scope.md").write_text(
        "# Oscilloscope\n\nThe oscilloscope shows four channels. Set the timebase with the slider.\n\n"
        "# Voltmeter\n\nTo measure a voltage, connect the signal to A1 and read the value in volts.\n",
        encoding="utf-8",
    )
    settings = Settings(index_dir=root / "index", embedder="all-minilm-l6-v2")
    ingest_folder(docs, settings.index_dir, minilm, settings)
    return settings.index_dir


@pytest.mark.slow
def test_ask_streams_the_answer_then_citations_and_timings(minilm_index, openai_server, models_dir):
    openai_server.pieces = ["Connect the signal ", "to A1 [2] [9]."]
    env = {"DOCQA_OPENAI_BASE_URL": openai_server.url, "DOCQA_OPENAI_MODEL": "m", "DOCQA_MIN_RELEVANCE": "0"}
    args = [
        "ask",
        "How do I measure a voltage?",
        "--index",
        str(minilm_index),
        "--embedder",
        "all-minilm-l6-v2",
    ]
    result = _docqa(*args, "--generator", "openai", "-k", "2", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Connect the signal to A1 [2] [9]."
    assert "(removed 1 citation(s) that pointed to no passage)" in lines
    assert any(line.startswith("[2] scope.md") for line in lines) or any(
        line.startswith("[2] ") for line in lines
    )
    assert "first token" in lines[-1] and "prompt" in lines[-1]

    result = _docqa(*args, "--generator", "openai", "-k", "2", "--json", env=env)
    data = json.loads(result.stdout)
    assert data["text"] == "Connect the signal to A1 [2]." and data["invalid_citations"] == 1
    assert data["citations"][0]["number"] == 2 and data["timings"]["total"] > 0


@pytest.mark.slow
def test_unreachable_generator_and_embedder_mismatch_are_one_line(minilm_index):
    env = {
        "DOCQA_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "DOCQA_OPENAI_MODEL": "m",
        "DOCQA_MIN_RELEVANCE": "0",
    }
    args = ["ask", "How do I measure a voltage?", "--index", str(minilm_index)]
    result = _docqa(*args, "--embedder", "all-minilm-l6-v2", "--generator", "openai", env=env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1: start it or set --generator"
    ]
    result = _docqa(*args, "--embedder", "embeddinggemma-300m")
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "built with all-minilm-l6-v2" in result.stderr


def test_a_refusal_by_the_model_says_why_and_shows_the_closest_passages():
    from ingest.records import Answer, Passage
    from rag.cli.ask_cmd import _footer

    passage = Passage("c1", "eyes17.pdf", "PV1 range is -5 to 5.", 99, "", "en", 1.0, 1, dense_score=0.55)
    refused = Answer("Price?", "I could not find this in the documents.", refused=True, passages=(passage,))
    doubted = Answer(
        "Price?",
        "I could not find this in the documents.",
        refused=True,
        passages=(passage,),
        refusal_score=0.4,
    )
    assert "model judged" not in _footer(refused, refused.text)
    footer = _footer(doubted, doubted.text)
    assert "refusal probability 0.40" in footer and "eyes17.pdf p. 99 (relevance 0.55)" in footer


class _EscapingEngine:
    """An engine whose documents and model are hostile: escape sequences everywhere."""

    generator = None

    def __init__(self, settings) -> None:
        self.settings = settings

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None

    def stream(self, question, language=None, scope=None):
        from ingest.records import Answer, Citation

        yield "Connect A1 \x1b[2J\x1b]8;;http://attacker.example\x07here\x1b]8;;\x07 [1]\r\n"
        yield Answer(
            question,
            "Connect A1 [1].",
            citations=(Citation(1, "c1", "evil\x1b[31m.md", None, "Setup \x9b2J\u202eexe.pdf", "q"),),
        )


def test_untrusted_text_reaches_the_terminal_without_control_characters(monkeypatch):
    import rag.engine

    monkeypatch.setattr(rag.engine, "open_engine", _EscapingEngine)
    result = CliRunner().invoke(cli, ["ask", "How?"])
    assert result.exit_code == 0, result.output
    assert "Connect A1 [2J]8;;http://attacker.examplehere]8;; [1]" in result.output
    assert "[1] evil[31m.md — Setup 2Jexe.pdf" in result.output
    bad = [ch for ch in result.output if ch not in "\n\t" and (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F)]
    assert not bad and "\u202e" not in result.output

    as_json = CliRunner().invoke(cli, ["ask", "How?", "--json"])
    assert "\x9b" not in as_json.output and "\x1b" not in as_json.output
    assert json.loads(as_json.output)["citations"][0]["heading"] == "Setup \x9b2J\u202eexe.pdf"


class _ScopeRecordingEngine:
    """An engine over two indexed files that records the scope each question came with."""

    scopes: ClassVar[list] = []
    generator_loads = 0

    def __init__(self, settings) -> None:
        from ingest.catalog import FileInfo

        class _Index:
            def files(self):
                return [FileInfo("/m", p, "", 0, 0.0, 1, 1, p) for p in ("en/a.pdf", "es/guide.md")]

        self.index = _Index()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None

    @property
    def generator(self):
        type(self).generator_loads += 1

    def stream(self, question, language=None, scope=None):
        from ingest.records import Answer

        type(self).scopes.append(scope)
        yield Answer(question, "It is in volts.")


def test_doc_folder_and_lang_flags_scope_the_question(monkeypatch):
    import rag.engine
    from ingest.records import Scope

    monkeypatch.setattr(rag.engine, "open_engine", _ScopeRecordingEngine)
    monkeypatch.setattr(_ScopeRecordingEngine, "scopes", [])
    flags = ["--doc", "a.pdf", "--doc", "guide.md", "--folder", "es/", "--lang", "ES", "--lang", "en"]
    for args in (flags, []):
        result = CliRunner().invoke(cli, ["ask", "How?", *args])
        assert result.exit_code == 0, result.output
    assert _ScopeRecordingEngine.scopes == [
        Scope(documents=("a.pdf", "guide.md"), folders=("es/",), languages=("es", "en")),
        None,
    ]


def test_a_scope_matching_nothing_is_one_line_before_the_generator_loads(monkeypatch, capsys):
    import rag.engine
    from rag.cli import main

    monkeypatch.setattr(rag.engine, "open_engine", _ScopeRecordingEngine)
    monkeypatch.setattr(_ScopeRecordingEngine, "generator_loads", 0)
    monkeypatch.setattr(sys, "argv", ["docqa", "ask", "How?", "--doc", "b.pdf"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and _ScopeRecordingEngine.generator_loads == 0
    assert capsys.readouterr().err.splitlines() == [
        "error: no indexed document is named 'b.pdf'; use one of: en/a.pdf, es/guide.md"
    ]
