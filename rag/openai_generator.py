"""A generator on any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI).

Streams ``POST {base_url}/chat/completions`` with ``"stream": true`` and reads the server-sent
events (``data: {...}`` lines, ending with ``data: [DONE]``). Temperature 0 by default, so answers
are as deterministic as the server allows. Connection failures, timeouts and HTTP errors become one
``GeneratorUnavailable`` line that says what to do. It does not retry and never falls back to
another backend silently. The server's own error text is never repeated (see ``_http_error``);
the API key goes only to the ``base_url`` it is given with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence

from ingest.errors import GeneratorUnavailable
from ingest.records import Message


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible HTTP server.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` or ``https://api.openai.com/v1``.
        model: the model name; "" asks the server (``GET /models``) and takes its first model.
        api_key: sent as a bearer token when not empty.
        context_window: tokens the served model accepts (the server does not say).
        temperature: 0 for deterministic answers.
        timeout: seconds to connect and between two streamed pieces.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str = "",
        context_window: int = 8192,
        temperature: float = 0.0,
        timeout: float = 60.0,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise ImportError("the OpenAI backend needs 'pip install httpx'") from None
        self.base_url = base_url.rstrip("/")
        self.context_window = context_window
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )
        self._model = model
        self.name = f"openai:{model}" if model else "openai"

    @property
    def model(self) -> str:
        """The served model, asked from the server once when not given."""
        if not self._model:
            models = _model_ids(self._request("GET", "/models"))
            if models is None:
                raise GeneratorUnavailable(
                    f"the server at {self.base_url} did not answer GET /models with an OpenAI model "
                    "list: check openai_base_url (it usually ends in /v1), or set openai_model"
                )
            if not models or not models[0]:
                raise GeneratorUnavailable(
                    f"the server at {self.base_url} lists no model: set openai_model (DOCQA_OPENAI_MODEL)"
                )
            self._model = models[0]
            self.name = f"openai:{self._model}"
        return self._model

    def count_tokens(self, text: str) -> int:
        """An upper estimate (3 characters a token): the server's tokenizer is not known here."""
        return math.ceil(len(text) / 3)

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 256) -> Iterator[str]:
        import httpx

        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    raise GeneratorUnavailable(_http_error(url, response.status_code))
                for line in response.iter_lines():
                    piece = _sse_piece(line)
                    if piece is None:
                        return
                    if piece:
                        yield piece
        except httpx.TimeoutException:
            raise GeneratorUnavailable(
                f"the OpenAI-compatible server at {self.base_url} timed out: check it is not "
                "overloaded, or set --generator"
            ) from None
        except httpx.TransportError:
            raise GeneratorUnavailable(_unreachable(self.base_url)) from None

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str) -> str:
        import httpx

        url = f"{self.base_url}{path}"
        try:
            response = self._client.request(method, url)
        except httpx.TimeoutException:
            raise GeneratorUnavailable(f"the server at {self.base_url} timed out: check it") from None
        except httpx.TransportError:
            raise GeneratorUnavailable(_unreachable(self.base_url)) from None
        if response.status_code >= 400:
            raise GeneratorUnavailable(_http_error(url, response.status_code))
        return response.text


def _model_ids(reply: str) -> list[str] | None:
    """The model ids of a ``GET /models`` reply; None when it is not such a reply (a web page).

    >>> _model_ids('{"data": [{"id": "m1"}, {"id": "m2"}]}'), _model_ids("<html>"), _model_ids("[1]")
    (['m1', 'm2'], None, None)
    """
    try:
        data = json.loads(reply)
    except json.JSONDecodeError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [str(m.get("id", "")) if isinstance(m, dict) else "" for m in items]


def _sse_piece(line: str) -> str | None:
    """Text of one server-sent event line; "" for lines without text, None at ``[DONE]``.

    >>> _sse_piece('data: {"choices": [{"delta": {"content": "Hi"}}]}')
    'Hi'
    """
    if not line.startswith("data:"):
        return ""  # comments (": keep-alive"), "event:" lines, blank separators
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        event = json.loads(payload)
    except json.JSONDecodeError:
        return ""
    if "error" in event:
        raise GeneratorUnavailable("the OpenAI-compatible server reported an error mid-answer: check its log")
    choices = event.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


def _unreachable(base_url: str) -> str:
    return f"cannot reach the OpenAI-compatible server at {base_url}: start it or set --generator"


def _http_error(url: str, status: int) -> str:
    """The status and what to check; never the server's own text, which could be anything the
    URL points to (an internal page, when someone types its address as the server)."""
    hint = {
        401: "check the API key (openai_api_key_env names its environment variable)",
        403: "check the API key's permissions",
        404: "check openai_base_url (it usually ends in /v1) and openai_model",
    }.get(status, "check the server's log")
    return f"the OpenAI-compatible server answered {status} for {url}: {hint}"
