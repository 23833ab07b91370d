"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, OpenAI's SSE format, and a record
of every request's path and headers (so a test can see where an API key went)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _OpenAIHandler(BaseHTTPRequestHandler):
    server: OpenAIServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.gets.append((self.path, dict(self.headers)))
        if self.server.models_reply is not None:
            self._send_bytes(200, self.server.models_reply, "text/html")
            return
        self._send(200, {"object": "list", "data": [{"id": "tiny-model", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.server.status != 200:
            self._send(self.server.status, {"error": {"message": self.server.error_text}})
            return
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive\n\n")
        for piece in self.server.pieces:
            event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status: int, data: dict) -> None:
        self._send_bytes(status, json.dumps(data).encode(), "application/json")

    def _send_bytes(self, status: int, payload: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class OpenAIServer(ThreadingHTTPServer):
    """Streams ``pieces``; ``requests`` holds (path, headers, body) per POST, ``gets`` (path,
    headers) per GET. ``status``, ``error_text``, ``delay`` and ``models_reply`` (raw bytes for
    ``GET /models``) shape its replies."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OpenAIHandler)
        self.requests: list = []
        self.gets: list = []
        self.pieces = ["Connect ", "A1 ", "[1]."]
        self.status = 200
        self.error_text = "Incorrect API key provided"
        self.delay = 0.0
        self.models_reply: bytes | None = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextlib.contextmanager
def running_openai_server(server_class: type[OpenAIServer] | None = None) -> Iterator[OpenAIServer]:
    """An ``OpenAIServer`` (or ``server_class``, a subclass) answering on a thread for the block."""
    server = (server_class or OpenAIServer)()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
