"""The real ``docqa serve`` in a child process, driven by the official ``openai`` client unchanged
and by httpx: a small real index (two WeeChat quick start guides, MiniLM), the real Qwen 0.5B,
answers streamed and not, bad tokens and requests, retrieval, upload, delete and health; then
the server is stopped and must not have tried to reach the network (slow: real models).

The child runs under the audit hook of ``tests.offline_audit`` (every socket connect other than
a Unix socket, and every DNS lookup, is recorded), without the offline switches in its
environment: the package must set them itself. It cannot run under ``unshare -n`` as the other
offline tests do, because the test must reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.offline import OFFLINE_SWITCHES
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from tests.offline_audit import AUDIT_PRELUDE

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "corpus" / "weechat"
TOKEN = "real-server-token-0123456789"
MODEL = "docqa-test-model"
QUESTION = "How do I join a channel?"
# The child: the audit prelude, then `docqa` itself; the recorded attempts are its last stdout line.
CHILD = (
    AUDIT_PRELUDE
    + """
import atexit
atexit.register(lambda: print(json.dumps({"attempts": attempts}), flush=True))
sys.argv = ["docqa", *sys.argv[1:]]
from rag.cli import main
main()
"""
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running ``docqa serve`` child; ``stop()`` ends it and returns its audit record."""

    def __init__(self, index_dir: Path, models_dir: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES and not k.startswith("DOCQA_")
        }
        env |= {
            "DOCQA_API_TOKENS": TOKEN,
            "DOCQA_MODELS_DIR": str(models_dir),
            "DOCQA_EMBEDDER": "all-minilm-l6-v2",
            "DOCQA_MAX_NEW_TOKENS": "48",
        }
        self.log = log
        command = [sys.executable, "-c", CHILD, "serve", "--index", str(index_dir), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True
        )
        self.audit: dict | None = None

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"docqa serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"docqa serve did not answer /healthz in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> dict:
        if self.audit is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly; atexit prints
            out, _ = self.process.communicate(timeout=120)
            assert self.process.returncode == 0, self.log.read_text()[-3000:]
            self.audit = json.loads(out.strip().splitlines()[-1])
        return self.audit


@pytest.fixture(scope="module")
def server(tmp_path_factory, minilm, qwen_folder, models_dir):
    root = tmp_path_factory.mktemp("serve")
    for name in ("weechat_quickstart.en.html", "weechat_quickstart.es.html"):
        (root / "docs").mkdir(exist_ok=True)
        shutil.copy(GUIDES / name, root / "docs" / name)
    settings = Settings(index_dir=root / "index", models_dir=models_dir, embedder="all-minilm-l6-v2")
    ingest_folder(root / "docs", settings.index_dir, minilm, settings)
    server = Server(settings.index_dir, models_dir, root / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        if server.audit is None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def answer(client):
    """One non-streamed answer, shared by the tests that compare with it."""
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])


@pytest.mark.slow
def test_health_without_a_token(server):
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok" and health["documents"] == 2 and health["chunks"] > 10
    assert (
        health["embedder"] == "all-minilm-l6-v2+onnx-int8"
        and health["generator"] == "qwen2.5-coder-0.5b-instruct"
    )


@pytest.mark.slow
def test_openai_client_gets_a_cited_answer(answer):
    assert answer.model == MODEL and answer.object == "chat.completion"
    text = answer.choices[0].message.content
    assert "/join" in text, text
    extra = answer.model_extra
    assert extra["refused"] is False
    assert extra["citations"], text
    first = extra["citations"][0]
    assert first["file"] == "weechat_quickstart.en.html" and "join" in first["heading"].lower(), first
    assert first["quote"] and first["chunk_id"] and first["score"] > 0
    assert answer.usage.prompt_tokens > 100 and 0 < answer.usage.completion_tokens <= 48


@pytest.mark.slow
def test_openai_client_streams_the_same_answer(client, answer):
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 2, pieces  # it streamed, not one block
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["text"] == answer.choices[0].message.content  # greedy: the same answer
    assert last.model_extra["citations"] == answer.model_extra["citations"]
    assert "/join" in "".join(pieces)


@pytest.mark.slow
def test_wrong_token_and_bad_requests(server, client):
    import openai

    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong-token-0123456789", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.status_code == 400
    reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_json"


@pytest.mark.slow
def test_retrieve_upload_and_delete(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=300) as http:
        passages = http.post("/v1/retrieve", json={"query": "join an IRC channel", "top_k": 3}).json()["data"]
        assert len(passages) == 3 and passages[0]["score"] >= passages[-1]["score"]
        assert any("/join" in p["text"] for p in passages)

        note = b"# Zebra room\n\nThe zebra room on the IRC server is #zebra-4417; join it with /join.\n"
        reply = http.post("/v1/documents", files={"file": ("zebra notes.md", note, "text/markdown")})
        assert reply.status_code == 201, reply.text
        assert reply.json()["added"] == ["zebra notes.md"]
        documents = http.get("/v1/documents").json()["data"]
        [zebra] = [d for d in documents if d["file"] == "zebra notes.md"]
        hits = http.post("/v1/retrieve", json={"query": "zebra room", "top_k": 1}).json()["data"]
        assert "#zebra-4417" in hits[0]["text"]

        assert http.delete(f"/v1/documents/{zebra['id']}").status_code == 200
        assert "zebra notes.md" not in [d["file"] for d in http.get("/v1/documents").json()["data"]]
        hits = http.post("/v1/retrieve", json={"query": "zebra room", "top_k": 3}).json()["data"]
        assert all("zebra-4417" not in h["text"] for h in hits)
        assert http.get("/healthz").json()["documents"] == 2


@pytest.mark.slow
def test_the_server_stops_cleanly_without_having_touched_the_network(server):
    audit = server.stop()
    assert audit["attempts"] == [], audit
