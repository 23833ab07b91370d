"""The shapes of ``docqa serve``'s requests and replies (pydantic), and records -> replies.

Chat follows OpenAI's chat completions, so standard clients work unchanged; docqa's own parts ride
in fields those clients ignore: in a request, the scope (``documents``, ``folders``,
``languages``, as ``ingest.records.Scope``), ``top_k`` and ``language`` (the ``openai`` client
sends them through ``extra_body``); in a reply, ``citations`` and ``refused``. Fields a request
may carry for other servers (``temperature``, ``max_tokens``...) are accepted and ignored: docqa
decodes greedily, with ``max_new_tokens`` from its settings. Nothing here runs a model or reads
the index.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.catalog import FileInfo
from ingest.records import Answer, IngestReport, Message, Passage, Scope


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ScopeFields(_Request):
    """What a question or search may draw on; an empty list restricts nothing."""

    documents: list[str] = Field(default_factory=list, description="indexed documents, by cited name or path")
    folders: list[str] = Field(default_factory=list, description="folders whose documents count")
    languages: list[str] = Field(default_factory=list, description="passage languages, e.g. ['es']")

    def scope(self) -> Scope | None:
        """The ``Scope`` these fields ask for; None when they restrict nothing."""
        return Scope(tuple(self.documents), tuple(self.folders), tuple(self.languages)) or None


class ContentPart(_Request):
    """One part of a message's content in OpenAI's list form; only text parts carry words."""

    type: str
    text: str = ""


class ChatMessage(_Request):
    """One chat turn; ``content`` is a string or OpenAI's list of parts."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's words: the string, or its text parts joined by newlines."""
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(ScopeFields):
    """``POST /v1/chat/completions``: the last user message is the question."""

    model: str = "docqa"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50, description="passages to retrieve (default: settings)")
    language: str | None = Field(None, description="answer language code (default: the question's)")

    def question_and_history(self) -> tuple[str, list[Message]]:
        """The question (the last message, which must be the user's) and the turns before it.

        System and tool messages are dropped: docqa writes its own instructions, so a client's
        cannot loosen them. Raises ValueError when the last message is not the user's.
        """
        last = self.messages[-1]
        if last.role != "user":
            raise ValueError(f"the last message is the {last.role}'s; end with the user's question")
        history = [Message(m.role, m.text()) for m in self.messages[:-1] if m.role in ("user", "assistant")]
        return last.text(), history


class RetrieveRequest(ScopeFields):
    """``POST /v1/retrieve``: the passages for a query, best first."""

    query: str
    top_k: int | None = Field(None, ge=1, le=50, description="passages to return (default: settings)")


class CitationOut(BaseModel):
    """A ``[n]`` marker of the answer, resolved to its passage."""

    number: int
    file: str
    page: int | None
    heading: str
    quote: str
    chunk_id: str
    score: float | None


class PassageOut(BaseModel):
    """A retrieved passage with its fused and per-retriever scores."""

    rank: int
    chunk_id: str
    file: str
    page: int | None
    heading: str
    lang: str
    text: str
    score: float
    dense_score: float | None
    lexical_score: float | None


class DocumentOut(BaseModel):
    """An indexed document; ``id`` is stable (a hash of its folder and path)."""

    id: str
    file: str
    path: str
    folder: str
    pages: int
    chunks: int
    size: int
    modified: float


def citations_of(answer: Answer) -> list[CitationOut]:
    """The answer's citations, each with its passage's fused score."""
    scores = {p.chunk_id: p.score for p in answer.passages}
    return [
        CitationOut(
            number=c.number,
            file=c.source,
            page=c.page,
            heading=c.heading,
            quote=c.quote,
            chunk_id=c.chunk_id,
            score=scores.get(c.chunk_id),
        )
        for c in answer.citations
    ]


def passage_out(p: Passage) -> PassageOut:
    """A passage as the API returns it."""
    return PassageOut(
        rank=p.rank,
        chunk_id=p.chunk_id,
        file=p.source,
        page=p.page,
        heading=p.heading,
        lang=p.lang,
        text=p.text,
        score=p.score,
        dense_score=p.dense_score,
        lexical_score=p.lexical_score,
    )


def document_id(info: FileInfo) -> str:
    """A document's id: the first 16 hex digits of the hash of its folder and path.

    >>> document_id(FileInfo("/docs", "a.pdf", "", 0, 0.0, 1, 1, "a.pdf"))
    '7bf6c2833b322367'
    """
    return hashlib.sha256(f"{info.root}\0{info.path}".encode()).hexdigest()[:16]


def document_out(info: FileInfo) -> DocumentOut:
    """An indexed file as the API lists it."""
    return DocumentOut(
        id=document_id(info),
        file=info.source,
        path=info.path,
        folder=info.root,
        pages=info.pages,
        chunks=info.chunks,
        size=info.size,
        modified=info.mtime,
    )


def report_out(report: IngestReport) -> dict:
    """An ingestion report as JSON."""
    return {
        "added": list(report.added),
        "updated": list(report.updated),
        "unchanged": list(report.unchanged),
        "skipped": [{"file": s.path, "reason": s.reason} for s in report.skipped],
        "warnings": [{"file": s.path, "reason": s.reason} for s in report.warnings],
        "chunks_added": report.chunks_added,
        "seconds": report.seconds,
    }


def usage_of(answer: Answer) -> dict[str, int]:
    """OpenAI's usage: prompt and answer tokens as the generator counted them (both 0 when the
    engine refused without running the model)."""
    prompt, completion = answer.timings.prompt_tokens, answer.timings.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
