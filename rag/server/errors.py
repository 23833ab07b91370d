"""Every failed request of ``docqa serve`` as one OpenAI-style JSON error body.

``{"error": {"message": ..., "type": ..., "code": ...}}``: the message says what was wrong and what
to do, like docqa's other errors; ``type`` is OpenAI's class (``invalid_request_error``,
``authentication_error``, ``server_error``...), ``code`` docqa's own short name for the case.
Library errors (``ingest.errors.DocqaError``) map to a status by their class; anything else is a
500 whose details go to the server's log, never to the client. This module does not decide what is
an error (the routes, ``rag.server.auth`` and ``rag.server.limits`` do).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import (
    ConfigError,
    DocqaError,
    EmbedderMismatch,
    EmptyQuestion,
    EmptyScope,
    GeneratorUnavailable,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    IndexUnavailable,
    ModelError,
    NothingToIndex,
)
from ingest.uploads import UploadRejected

log = logging.getLogger("docqa.serve")

# class -> (HTTP status, OpenAI error type, docqa code); the first match in this order wins.
_LIBRARY_ERRORS: tuple[tuple[type[DocqaError], int, str, str], ...] = (
    (IndexNotFound, 503, "server_error", "index_not_found"),
    (IndexBusy, 409, "conflict_error", "index_busy"),
    (IndexUnavailable, 503, "server_error", "index_unavailable"),
    (IndexCorrupt, 500, "server_error", "index_corrupt"),
    (EmbedderMismatch, 500, "server_error", "embedder_mismatch"),
    (EmptyQuestion, 400, "invalid_request_error", "empty_question"),
    (EmptyScope, 400, "invalid_request_error", "empty_scope"),
    (UploadRejected, 400, "invalid_request_error", "upload_rejected"),
    (NothingToIndex, 422, "invalid_request_error", "nothing_to_index"),
    (ConfigError, 400, "invalid_request_error", "bad_setting"),
    (GeneratorUnavailable, 503, "server_error", "generator_unavailable"),
    (ModelError, 503, "server_error", "model_unavailable"),
)


class ApiError(Exception):
    """A request the API refuses: raise it in a route; it becomes the JSON error body.

    Args:
        status: the HTTP status.
        message: what was wrong and what to do.
        code: docqa's short name for the case, e.g. ``"document_not_found"``.
        kind: OpenAI's error type (default from the status).
    """

    def __init__(self, status: int, message: str, code: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind or _kind_for(status)


def error_body(message: str, kind: str, code: str) -> dict[str, Any]:
    """The JSON body of an error.

    >>> error_body("no route GET /x", "invalid_request_error", "not_found")["error"]["code"]
    'not_found'
    """
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def error_response(status: int, message: str, code: str, kind: str | None = None) -> JSONResponse:
    """A JSON response holding ``error_body``; 401s also say how to authenticate."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(message, kind or _kind_for(status), code), status, headers=headers)


def api_error_for(err: DocqaError) -> ApiError:
    """The ``ApiError`` a library error becomes (status by its class; 500 for one not listed)."""
    for cls, status, kind, code in _LIBRARY_ERRORS:
        if isinstance(err, cls):
            message = str(err)
            if isinstance(err, IndexNotFound):
                message += ", or upload documents with POST /v1/documents"
            return ApiError(status, message, code, kind)
    return ApiError(500, str(err), "docqa_error", "server_error")


def sse_error(err: BaseException) -> str:
    """A server-sent event carrying the error that cut a stream short (the status is already sent)."""
    api = _as_api_error(err)
    return f"data: {json.dumps(error_body(api.message, api.kind, api.code), ensure_ascii=False)}\n\n"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` (library, validation, routing, unexpected) a JSON error body."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message, err.code, err.kind)

    @app.exception_handler(DocqaError)
    async def _library(request: Request, err: DocqaError) -> JSONResponse:
        api = api_error_for(err)
        return error_response(api.status, api.message, api.code, api.kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        message, code = validation_message(err.errors())
        return error_response(400, message, code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            message = (
                f"no route {request.method} {request.url.path}; the API serves /v1/chat/completions, "
                "/v1/models, /v1/retrieve, /v1/documents and /healthz"
            )
            return error_response(404, message, "not_found")
        if err.status_code == 405:
            return error_response(
                405, f"{request.method} is not allowed on {request.url.path}", "method_not_allowed"
            )
        return error_response(err.status_code, str(err.detail), "http_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(
            500, "internal error in docqa serve; the server's log has the details", "internal_error"
        )


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """One sentence (and a code) for pydantic's errors about a request body.

    >>> validation_message([{"type": "missing", "loc": ("body", "messages"), "msg": "Field required"}])
    ('messages: Field required', 'invalid_request')
    >>> validation_message([{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error"}])[1]
    'invalid_json'
    """
    if not errors:
        return "the request is not valid", "invalid_request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return (
            "the request body is not valid JSON; send a JSON object with Content-Type: application/json",
            "invalid_json",
        )
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return message, "invalid_request"


def _as_api_error(err: BaseException) -> ApiError:
    if isinstance(err, ApiError):
        return err
    if isinstance(err, DocqaError):
        return api_error_for(err)
    log.error("unexpected error while streaming", exc_info=err)
    return ApiError(500, "internal error in docqa serve; the server's log has the details", "internal_error")


def _kind_for(status: int) -> str:
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "conflict_error",
        413: "invalid_request_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
