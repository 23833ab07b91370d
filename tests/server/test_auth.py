"""Bearer tokens: loaded from a file and the environment, required beyond loopback, checked on
every route but /healthz."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from ingest.errors import ConfigError
from rag.server.auth import check_exposure, load_tokens
from tests.server.conftest import TOKEN, make_client

OTHER = "other-token-abcdefghijklmnop"


@pytest.fixture()
def guarded(index_dir, settings, embedder, generator):
    with make_client(settings, embedder, generator, tokens=(OTHER, TOKEN)) as client:
        yield client


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", TOKEN],
)
def test_a_missing_or_wrong_token_is_401(guarded, header):
    headers = {"Authorization": header} if header else {}
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/retrieve"), ("GET", "/v1/nothing")]:
        reply = guarded.request(method, path, json={"query": "volts"}, headers=headers)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.json()["error"]["code"] == "invalid_api_key"
        assert reply.headers["www-authenticate"] == "Bearer"


def test_a_right_token_passes_and_health_needs_none(guarded):
    for token in (TOKEN, OTHER):
        reply = guarded.post(
            "/v1/retrieve", json={"query": "volts"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status_code == 200, reply.text
    assert guarded.get("/healthz").status_code == 200


def test_tokens_come_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\n{TOKEN}\n\n  {OTHER}  \n", encoding="utf-8")
    env = {"DOCQA_API_TOKENS": f"{OTHER}, env-token-0123456789abcdef"}
    assert load_tokens(path, env) == (TOKEN, OTHER, "env-token-0123456789abcdef")
    assert load_tokens(None, {}) == ()


def test_a_short_token_or_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 16"):
        load_tokens(None, {"DOCQA_API_TOKENS": "secret"})
    with pytest.raises(ConfigError, match="cannot read the tokens file"):
        load_tokens(tmp_path / "missing", {})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_listening_beyond_loopback_needs_tokens(host):
    with pytest.raises(ConfigError, match=r"refusing to listen on .* without API tokens"):
        check_exposure(host, ())
    check_exposure(host, (TOKEN,))
    check_exposure("127.0.0.1", ())
    check_exposure("localhost", ())


def test_docqa_serve_refuses_to_start_exposed_without_tokens(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DOCQA_API_TOKENS"}
    done = subprocess.run(
        [sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--index", str(tmp_path / "i")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: refusing to listen on 0.0.0.0 without API tokens"), done.stderr
    assert "Traceback" not in done.stderr


def test_docqa_serve_says_a_port_in_use_before_loading_models(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "rag", "serve", "--port", str(port), "--index", str(tmp_path / "i")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}"), done.stderr
    assert "pick another with --port" in done.stderr and "Traceback" not in done.stderr
