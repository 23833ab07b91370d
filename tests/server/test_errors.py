"""Every bad request gets a status and an OpenAI-style JSON error body that says what to do:
bad JSON, missing or wrong messages, an empty question, unknown routes, a body over the limit,
a missing index."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ingest.errors import IndexNotFound
from rag.server.app import create_app
from tests.server.conftest import make_client


def _error(reply, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == code and error["type"] and error["message"]
    return error["message"]


def test_bad_json(client):
    reply = client.post(
        "/v1/chat/completions", content=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in _error(reply, 400, "invalid_json")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "m"}, "messages: Field required"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "hi"}], "documents": "manual.md"}, "documents"),
        ({"messages": [{"role": "user", "content": "hi"}], "top_k": 0}, "top_k"),
        ([1, 2], "object"),
    ],
)
def test_malformed_chat_request(client, body, words):
    assert words in _error(client.post("/v1/chat/completions", json=body), 400, "invalid_request")


def test_last_message_must_be_the_users(client):
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    message = _error(client.post("/v1/chat/completions", json=body), 400, "invalid_messages")
    assert "end with the user's question" in message


@pytest.mark.parametrize("content", ["", "   \n"])
def test_empty_question(client, content):
    body = {"messages": [{"role": "user", "content": content}]}
    assert "question is empty" in _error(
        client.post("/v1/chat/completions", json=body), 400, "empty_question"
    )
    assert _error(client.post("/v1/retrieve", json={"query": content}), 400, "empty_question")


def test_unknown_route_and_wrong_method(client):
    message = _error(client.get("/v1/nothing"), 404, "not_found")
    assert "/v1/chat/completions" in message
    _error(client.get("/v1/chat/completions"), 405, "method_not_allowed")


def test_body_over_the_limit_is_refused_before_it_is_read(client):
    big = b"x" * 1_100_000  # the fixture's limit is 1 MB
    message = _error(
        client.post("/v1/chat/completions", content=big, headers={"Content-Type": "application/json"}),
        413,
        "request_too_large",
    )
    assert "serve_max_body_mb" in message


def test_body_without_a_length_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(30):
            yield b"x" * 100_000

    reply = client.post(
        "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _error(reply, 413, "request_too_large")
    assert client.get("/v1/models").status_code == 200  # the server carries on


def test_upload_over_the_limit(client):
    files = {"file": ("big.md", b"# Big\n" + b"word " * 300_000, "text/markdown")}
    _error(client.post("/v1/documents", files=files), 413, "request_too_large")


def test_missing_index_is_503_saying_what_to_do(tmp_path, settings, embedder, generator):
    def no_index():
        raise IndexNotFound(f"no index at {settings.index_dir}; run 'docqa ingest FOLDER' first")

    with TestClient(create_app(no_index, settings)) as client:
        body = {"messages": [{"role": "user", "content": "How?"}]}
        message = _error(client.post("/v1/chat/completions", json=body), 503, "index_not_found")
        assert "docqa ingest" in message and "POST /v1/documents" in message
        _error(client.post("/v1/retrieve", json={"query": "volts"}), 503, "index_not_found")
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "no_index"


def test_a_server_started_without_an_index_works_once_documents_are_uploaded(settings, embedder, generator):
    generator.enqueue("Zebras are striped [1].")
    with make_client(settings, embedder, generator) as client:
        assert client.get("/healthz").status_code == 503
        files = {"file": ("zebra.md", b"# Zebra\n\nZebras are striped animals.\n", "text/markdown")}
        reply = client.post("/v1/documents", files=files)
        assert reply.status_code == 201, reply.text
        assert client.get("/healthz").json()["documents"] == 1
        body = {"messages": [{"role": "user", "content": "What are zebras like?"}]}
        answer = client.post("/v1/chat/completions", json=body).json()
        assert answer["citations"][0]["file"] == "zebra.md"


def test_an_unexpected_error_is_a_500_without_details(settings, embedder):
    def broken():
        raise RuntimeError("secret detail /etc/shadow")

    with TestClient(create_app(broken, settings), raise_server_exceptions=False) as client:
        assert "/etc/shadow" not in _error(client.get("/v1/documents"), 500, "internal_error")
