"""OpenAIGenerator against a real local HTTP server speaking the OpenAI streaming (SSE) format."""

from __future__ import annotations

import socket

import pytest

from ingest.errors import GeneratorUnavailable
from ingest.records import Message
from ingest.settings import Settings
from rag.generate import load_generator
from rag.openai_generator import OpenAIGenerator

MESSAGES = [Message("system", "rules"), Message("user", "How?")]


def test_streams_pieces_and_sends_a_deterministic_request(openai_server):
    generator = OpenAIGenerator(openai_server.url + "/", "tiny-model", api_key="sk-test")
    assert list(generator.stream(MESSAGES, max_new_tokens=7)) == ["Connect ", "A1 ", "[1]."]
    path, headers, body = openai_server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["stream"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 7
    assert body["model"] == "tiny-model"
    assert body["messages"] == [{"role": "system", "content": "rules"}, {"role": "user", "content": "How?"}]
    assert generator.name == "openai:tiny-model"


def test_model_is_asked_from_the_server_when_not_set(openai_server):
    generator = OpenAIGenerator(openai_server.url)
    assert "".join(generator.stream(MESSAGES)) == "Connect A1 [1]."
    assert openai_server.requests[0][2]["model"] == "tiny-model" and generator.name == "openai:tiny-model"
    assert "Authorization" not in openai_server.requests[0][1]


def test_connection_refused_says_what_to_do():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    generator = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m")
    with pytest.raises(
        GeneratorUnavailable, match=r"cannot reach the OpenAI-compatible server at .*set --generator"
    ):
        list(generator.stream(MESSAGES))


def test_http_error_names_the_status_and_the_fix_but_not_the_hosts_text(openai_server):
    openai_server.status = 401
    openai_server.error_text = "secret internal page: db password hunter2"
    with pytest.raises(GeneratorUnavailable, match=r"401.*check the API key") as caught:
        list(OpenAIGenerator(openai_server.url, "m").stream(MESSAGES))
    assert "hunter2" not in str(caught.value) and "internal page" not in str(caught.value)


def test_no_key_env_means_no_authorization_header(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-secret")
    settings = Settings(
        generator="openai", openai_base_url=openai_server.url, openai_model="m", openai_api_key_env=""
    )
    assert "".join(load_generator(settings).stream(MESSAGES)) == "Connect A1 [1]."
    assert "Authorization" not in openai_server.requests[0][1]


def test_timeout_is_an_error(openai_server):
    openai_server.delay = 1.0
    with pytest.raises(GeneratorUnavailable, match="timed out"):
        list(OpenAIGenerator(openai_server.url, "m", timeout=0.2).stream(MESSAGES))


def test_load_generator_builds_it_from_settings(openai_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-env")
    settings = Settings(
        generator="openai", openai_base_url=openai_server.url, openai_model="m", openai_api_key_env="MY_KEY"
    )
    generator = load_generator(settings)
    assert isinstance(generator, OpenAIGenerator)
    assert "".join(generator.stream(MESSAGES)) == "Connect A1 [1]."
    assert openai_server.requests[0][1]["Authorization"] == "Bearer sk-env"


def test_count_tokens_overestimates():
    generator = OpenAIGenerator("http://127.0.0.1:9/v1", "m")
    assert generator.count_tokens("abcdefghi") == 3 and generator.count_tokens("") == 0


def test_quality_generator_by_name_says_how_to_fetch_it(tmp_path):
    from ingest.errors import ModelNotFound

    settings = Settings(generator="qwen2.5-coder-1.5b-instruct", models_dir=tmp_path)
    with pytest.raises(ModelNotFound, match=r"docqa models fetch qwen2\.5-coder-1\.5b-instruct"):
        load_generator(settings)


@pytest.mark.parametrize(
    "reply", [b"<html><body>Welcome to nginx!</body></html>", b"[1, 2]", b'{"models": 3}']
)
def test_a_models_reply_that_is_not_a_model_list_is_a_clear_error(openai_server, reply):
    openai_server.models_reply = reply
    generator = OpenAIGenerator(openai_server.url)
    with pytest.raises(
        GeneratorUnavailable, match=r"did not answer GET /models .*set openai_model"
    ) as caught:
        list(generator.stream(MESSAGES))
    assert "nginx" not in str(caught.value)
    assert openai_server.gets[0][0] == "/v1/models"
