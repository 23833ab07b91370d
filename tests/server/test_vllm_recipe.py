"""The vLLM recipe (README, "Answering with a bigger model on a vLLM server"): docqa with
``generator = "openai"`` pointed at a server speaking vLLM's dialect gives a cited answer, through
the engine, behind ``docqa serve``, and from the real ``docqa ask`` (slow: it loads MiniLM)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.stores import open_store
from rag.engine import Engine
from rag.generate import load_generator
from rag.server.app import create_app
from tests.server.vllm_stand_in import SERVED_MODEL, running_vllm_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def vllm():
    with running_vllm_server() as server:
        server.pieces = ["Connect ", "the signal ", "to A1 ", "[1]."]
        yield server


def _recipe(settings: Settings, url: str) -> Settings:
    """The recipe's settings: generator "openai" at the vLLM URL, the model asked from the server."""
    return settings.replace(generator="openai", openai_base_url=url, openai_model="", openai_api_key_env="")


def test_the_engine_answers_with_citations_through_vllm(index_dir, settings, embedder, vllm):
    settings = _recipe(settings, vllm.url)
    with Engine(settings, open_store(settings, index_dir), embedder, load_generator(settings)) as engine:
        answer = engine.ask("How do I measure a voltage?")
    assert answer.text == "Connect the signal to A1 [1]." and not answer.refused
    assert answer.citations[0].source in ("manual.md", "manual.es.md")
    assert [path for path, _ in vllm.gets] == ["/v1/models"]
    path, _, body = vllm.requests[0]
    assert path == "/v1/chat/completions" and body["model"] == SERVED_MODEL
    assert (
        body["stream"] is True
        and body["temperature"] == 0.0
        and body["max_tokens"] == settings.max_new_tokens
    )
    assert "A1" in body["messages"][-1]["content"]  # the passages went with the question


def test_docqa_serve_in_front_of_vllm(index_dir, settings, embedder, vllm):
    from fastapi.testclient import TestClient

    settings = _recipe(settings, vllm.url)

    def engine_factory() -> Engine:
        return Engine(settings, open_store(settings, index_dir), embedder, load_generator(settings))

    with TestClient(create_app(engine_factory, settings)) as client:
        body = {"model": "docqa", "messages": [{"role": "user", "content": "How do I measure a voltage?"}]}
        reply = client.post("/v1/chat/completions", json=body).json()
        assert reply["choices"][0]["message"]["content"] == "Connect the signal to A1 [1]."
        assert reply["citations"][0]["file"] in ("manual.md", "manual.es.md")
        assert client.get("/healthz").json()["generator"] == "openai:(the server default)"


@pytest.mark.slow
def test_docqa_ask_with_the_recipe_settings_cites_the_guide(tmp_path, minilm, models_dir, vllm):
    vllm.pieces = ["Type ", "/join #channel ", "[1]."]
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ROOT / "corpus" / "weechat" / "weechat_quickstart.en.html", docs)
    settings = Settings(index_dir=tmp_path / "index", models_dir=models_dir, embedder="all-minilm-l6-v2")
    ingest_folder(docs, settings.index_dir, minilm, settings)
    config = tmp_path / "docqa.toml"
    config.write_text(
        f'embedder = "all-minilm-l6-v2"\ngenerator = "openai"\nopenai_base_url = "{vllm.url}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    env["DOCQA_MODELS_DIR"] = str(models_dir)
    command = [sys.executable, "-m", "rag", "ask", "How do I join a channel?", "--json"]
    command += ["--index", str(settings.index_dir), "--config", str(config)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["text"] == "Type /join #channel [1]." and not answer["refused"]
    assert answer["citations"][0]["source"] == "weechat_quickstart.en.html"
    assert "join" in answer["citations"][0]["heading"].lower()
    assert vllm.requests[0][2]["model"] == SERVED_MODEL
