"""The request body limit of ``docqa serve``, as ASGI middleware in front of everything else.

A request whose ``Content-Length`` is over the limit is answered 413 before a byte of its body is
read; one without a length (chunked) is counted as it arrives and cut off with 413 when it passes
the limit. So no request can make the server hold more than the limit in memory. This module does
not know the routes or the tokens.
"""

from __future__ import annotations

import json
from typing import Any

from rag.server.errors import error_body

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Wraps an ASGI app: request bodies over ``max_bytes`` get a 413 JSON error.

    Args:
        app: the ASGI app.
        max_bytes: the largest body accepted.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _reply(send, 400, "the Content-Length header is not a number", "bad_content_length")
                return
            if declared > self.max_bytes:
                await _reply(send, 413, self._message(declared), "request_too_large")
                return
        received = 0
        started = too_large = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            if too_large:  # the app's answer to the cut-off body (an error) is replaced by the 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _reply(send, 413, self._message(received), "request_too_large")

    def _message(self, size: int) -> str:
        return (
            f"the request body ({size / 1e6:.1f} MB or more) is over the server's "
            f"{self.max_bytes / 1e6:.1f} MB limit; send a smaller file or raise serve_max_body_mb"
        )


async def _reply(send: Any, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(message, "invalid_request_error", code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
