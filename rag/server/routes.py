"""The endpoints of ``docqa serve``; each parses, calls ``rag.server.backend.Backend``, replies.

Blocking work never runs on the event loop: answers go to the backend's generation worker,
retrieval, listing and health to the thread pool, uploads and deletions to the thread pool under
the backend's write lock. Errors are raised (``ApiError``, library errors) and turned into JSON
bodies by ``rag.server.errors``; tokens are checked in front of the app (``rag.server.auth``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ingest.errors import IndexNotFound
from ingest.load import SUPPORTED_SUFFIXES
from ingest.records import Answer
from ingest.uploads import check_upload
from rag.engine import check_question
from rag.server.backend import Backend
from rag.server.chat import Reply, completion, events
from rag.server.errors import ApiError, api_error_for, error_body
from rag.server.schemas import (
    ChatRequest,
    RetrieveRequest,
    document_out,
    passage_out,
    report_out,
)

MODEL_ID = "docqa"  # the one model GET /v1/models lists; any name is accepted and echoed

router = APIRouter()


def _backend(request: Request) -> Backend:
    return request.app.state.backend


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Whether the index is there, with its counts and the models' names (no token needed)."""
    try:
        return JSONResponse(await run_in_threadpool(_backend(request).health))
    except IndexNotFound as err:
        api = api_error_for(err)
        return JSONResponse({"status": "no_index", **error_body(api.message, api.kind, api.code)}, 503)


@router.get("/v1/models")
async def models(request: Request) -> dict:
    """The served model (OpenAI's model list)."""
    settings = _backend(request).settings
    return {
        "object": "list",
        "data": [
            {
                "id": MODEL_ID,
                "object": "model",
                "created": 0,
                "owned_by": "docqa",
                "generator": settings.generator,
                "embedder": settings.embedder,
            }
        ],
    }


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> dict | StreamingResponse:
    """Answer the last user message from the documents, OpenAI-style, with citations."""
    try:
        question, history = body.question_and_history()
    except ValueError as err:
        raise ApiError(400, str(err), "invalid_messages") from None
    question = check_question(question)
    items = _backend(request).answer(
        question, history=history, k=body.top_k, language=body.language, scope=body.scope()
    )
    reply = Reply(model=body.model)
    if not body.stream:
        answer = None
        async for item in items:
            if isinstance(item, Answer):
                answer = item
        if answer is None:
            raise ApiError(500, "the engine gave no answer; the server's log has the details", "no_answer")
        return completion(answer, reply)
    first = await anext(items)  # an error before the first piece is a plain HTTP error
    return StreamingResponse(
        events(first, items, reply),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/v1/retrieve")
async def retrieve(body: RetrieveRequest, request: Request) -> dict:
    """The best passages for a query, with their scores (no generation)."""
    query = check_question(body.query)
    passages = await run_in_threadpool(_backend(request).retrieve, query, body.top_k, body.scope())
    return {"object": "list", "data": [passage_out(p).model_dump() for p in passages]}


@router.get("/v1/documents")
async def list_documents(request: Request) -> dict:
    """The indexed documents."""
    files = await run_in_threadpool(_backend(request).documents)
    return {"object": "list", "data": [document_out(f).model_dump() for f in files]}


@router.post("/v1/documents", status_code=201)
async def upload_documents(request: Request) -> dict:
    """Upload files (multipart, field ``file``, repeatable) and index them; replies when indexed.

    A file of the same name replaces the earlier upload. Files docqa cannot read are reported
    under ``skipped``; a batch where every file was skipped is a 422.
    """
    backend = _backend(request)
    form = await request.form()
    uploads = [item for key, item in form.multi_items() if key == "file" and not isinstance(item, str)]
    if not uploads:
        raise ApiError(
            400, "no file in the request: send multipart/form-data with one or more 'file' fields", "no_file"
        )
    limit = int(backend.settings.max_file_mb * 1_000_000)
    checked = []
    for upload in uploads:
        data = await _read(upload)
        name = check_upload(upload.filename or "", len(data), max_bytes=limit, suffixes=SUPPORTED_SUFFIXES)
        checked.append((name, data))
    report = await run_in_threadpool(backend.upload, checked)
    if report.skipped and not (report.added or report.updated or report.unchanged):
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped)
        raise ApiError(422, f"nothing was indexed: {reasons}", "not_indexed")
    return {"object": "ingest.report", **report_out(report)}


@router.delete("/v1/documents/{ref:path}")
async def delete_document(ref: str, request: Request) -> dict:
    """Remove one document (by id, cited name or path) from the index, and its upload if any."""
    info = await run_in_threadpool(_backend(request).delete, ref)
    return {"object": "document.deleted", "deleted": True, **document_out(info).model_dump()}


async def _read(upload: UploadFile) -> bytes:
    try:
        return await upload.read()
    finally:
        await upload.close()
