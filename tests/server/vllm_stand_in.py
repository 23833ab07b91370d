"""A stand-in for ``vllm serve``: ``tests.openai_server`` speaking vLLM's dialect of the OpenAI API.

What differs from the plain stand-in, as vLLM's OpenAI server sends it: ``GET /v1/models`` lists
the served model by its Hugging Face name with ``owned_by: "vllm"`` and ``max_model_len``; every
streamed chunk carries ``id``, ``object``, ``created``, ``model`` and ``logprobs: null``; the
first chunk holds only the role (``content: ""``), the last an empty content with
``finish_reason`` and ``stop_reason``; no keep-alive comment.
"""

from __future__ import annotations

import contextlib
import json
import time

from tests.openai_server import OpenAIServer, _OpenAIHandler, running_openai_server

SERVED_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


class _VLLMHandler(_OpenAIHandler):
    def do_GET(self) -> None:
        self.server.gets.append((self.path, dict(self.headers)))
        model = {
            "id": SERVED_MODEL,
            "object": "model",
            "created": 1733000000,
            "owned_by": "vllm",
            "root": SERVED_MODEL,
            "parent": None,
            "max_model_len": 32768,
            "permission": [{"id": "modelperm-0", "object": "model_permission", "allow_sampling": True}],
        }
        self._send(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if body.get("model") != SERVED_MODEL:  # vLLM answers 404 for a model it does not serve
            message = f"The model `{body.get('model')}` does not exist."
            self._send(404, {"object": "error", "message": message, "type": "NotFoundError", "code": 404})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.end_headers()
        head = {"id": "chatcmpl-5f1c", "object": "chat.completion.chunk", "created": int(time.time())}
        head["model"] = SERVED_MODEL
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in self.server.pieces]
        for delta in deltas:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            self.wfile.write(f"data: {json.dumps(head | {'choices': [choice]})}\n\n".encode())
            self.wfile.flush()
        end = {
            "index": 0,
            "delta": {"content": ""},
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
        self.wfile.write(f"data: {json.dumps(head | {'choices': [end]})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


class VLLMServer(OpenAIServer):
    """An ``OpenAIServer`` answering as ``vllm serve Qwen/Qwen2.5-1.5B-Instruct`` would."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _VLLMHandler


def running_vllm_server() -> contextlib.AbstractContextManager[VLLMServer]:
    """A ``VLLMServer`` answering on a thread for the ``with`` block."""
    return running_openai_server(VLLMServer)
