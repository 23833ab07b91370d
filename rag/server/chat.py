"""An ``Answer`` as OpenAI's chat completion: one JSON reply, or server-sent events as it streams.

Streaming sends ``data: {chunk}`` events: first the assistant's role, then each piece of text as
the model writes it, then a last chunk with ``finish_reason``, ``usage`` and docqa's fields
(``citations``, ``refused`` and ``text``, the final answer: the streamed pieces with markers that
pointed to no passage removed), then ``data: [DONE]``. An error after the stream has started is
one ``data: {"error": ...}`` event (OpenAI's own way; its client raises it), then ``[DONE]``.
This module does not run the engine (``rag.server.backend`` does).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from ingest.records import Answer
from rag.server.errors import sse_error
from rag.server.schemas import citations_of, usage_of


@dataclass(frozen=True)
class Reply:
    """What every chunk of one reply shares: its id, creation time and the model asked for."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))


def completion(answer: Answer, reply: Reply) -> dict[str, Any]:
    """The whole reply (``"object": "chat.completion"``) with docqa's citations."""
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_of(answer),
        **_docqa_fields(answer),
    }


async def events(
    first: str | Answer, rest: AsyncGenerator[str | Answer, None], reply: Reply
) -> AsyncGenerator[str, None]:
    """The server-sent events of a streamed reply, from the engine's items (``first`` already read)."""
    yield _event(_chunk(reply, {"role": "assistant", "content": ""}))
    try:
        item = first
        while True:
            if isinstance(item, Answer):
                fields = _docqa_fields(item)
                yield _event(_chunk(reply, {}, "stop", usage=usage_of(item), **fields, text=item.text))
                break
            if item:
                yield _event(_chunk(reply, {"content": item}))
            item = await anext(rest)
    except StopAsyncIteration:  # the engine always ends with an Answer; a broken one is an error
        yield sse_error(RuntimeError("the answer stream ended without an answer"))
    except Exception as err:
        yield sse_error(err)
    finally:
        await rest.aclose()  # a client that left stops the generation at its next piece
    yield "data: [DONE]\n\n"


def _chunk(reply: Reply, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def _docqa_fields(answer: Answer) -> dict[str, Any]:
    return {
        "citations": [c.model_dump() for c in citations_of(answer)],
        "refused": answer.refused,
    }


def _event(data: dict[str, Any]) -> str:
    """One server-sent event.

    >>> _event({"a": 1})
    'data: {"a": 1}\\n\\n'
    """
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
