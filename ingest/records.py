"""Frozen records that flow between docqa's stages.

Every stage takes and returns these, so a stage can be tested alone and swapped. Ids are hashes
of content and position (never random), so indexing the same folder twice gives the same ids.
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file seen by the scanner. ``path`` is relative to the ingested folder, POSIX style."""

    path: str
    sha256: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Section:
    """A piece of a document with one location: a PDF page or a heading path.

    Args:
        text: the section's text, exactly as extracted (chunk offsets point into it).
        source: the file it came from (relative path, as in ``FileRecord.path``).
        page: 1-based page number for paged formats (PDF), else None.
        heading: heading path such as ``"Install > On Linux"``; "" when the format has none.
        lang: detected language code ("en", "es", ...), "und" when unknown.
        origin: how the text was read: "text" (the file's own text) or "ocr" (a scanned page).
    """

    text: str
    source: str
    page: int | None = None
    heading: str = ""
    lang: str = "und"
    origin: str = "text"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of one section, sized for the embedder.

    ``table_header + section_text[start:end] == text`` always holds; ``table_header`` is ""
    except in a piece of a Markdown table after its first, which repeats the table's header and
    separator lines before its rows. ``section`` is the section's position in its file,
    ``position`` the chunk's position in the file; ``origin`` is its section's ("text" or "ocr").
    """

    id: str
    source: str
    text: str
    start: int
    end: int
    section: int
    position: int
    page: int | None = None
    heading: str = ""
    lang: str = "und"
    tokens: int = 0
    origin: str = "text"
    table_header: str = ""


def chunk_id(file_sha256: str, position: int, text: str) -> str:
    """Stable id of a chunk from its file's content hash, its position and its text.

    >>> chunk_id("ab" * 32, 0, "hello")[:8]
    '584b7ac8'
    """
    digest = hashlib.sha256(f"{file_sha256}:{position}:{text}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its scores. ``rank`` is 1-based in the final order."""

    chunk_id: str
    source: str
    text: str
    page: int | None
    heading: str
    lang: str
    score: float
    rank: int
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a question may be answered from; an empty field restricts nothing.

    A file is in scope when it is one of ``documents`` or lies under one of ``folders`` (either,
    when both are given; every file when neither is); of its passages, only those in
    ``languages`` count. ``rag.scope.scope_sources`` resolves it against an index.

    Args:
        documents: indexed files, each by the name its chunks cite (``"eyes17/en/eyes17.pdf"``),
            its path on disk, or its file name alone (``"eyes17.pdf"``: every file so named).
        folders: path prefixes, whole folder names (``"eyes17/en"`` holds ``eyes17/en/a.pdf``).
        languages: language codes of the passages (``"es"``), as detected per passage.

    >>> Scope(documents=["manual.pdf"], languages=["ES "])
    Scope(documents=('manual.pdf',), folders=(), languages=('es',))
    """

    documents: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("documents", "folders", "languages"):
            value = getattr(self, name)
            if isinstance(value, str):  # a lone string would be read as its characters
                raise TypeError(f"Scope.{name} takes a list of names, not the string {value!r}")
            items = (str(item).strip() for item in value)
            cleaned = tuple(item.lower() if name == "languages" else item for item in items if item)
            object.__setattr__(self, name, tuple(dict.fromkeys(cleaned)))

    def __bool__(self) -> bool:
        return bool(self.documents or self.folders or self.languages)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message for a generator: role is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A ``[n]`` marker in an answer resolved to the passage it points to."""

    number: int
    chunk_id: str
    source: str
    page: int | None
    heading: str
    quote: str


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds spent in each step of answering; ``first_token`` is from the start of ``ask``."""

    retrieve: float = 0.0
    prompt: float = 0.0
    first_token: float | None = None
    total: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What the query engine returns for one question.

    Args:
        text: the answer with valid ``[n]`` markers only.
        citations: the markers' passages, in order of first use.
        refused: the documents do not answer the question (by retrieval or by the model).
        unsupported: the model answered but cited no valid passage.
        passages: everything retrieved, with scores, in rank order.
        invalid_citations: how many markers pointed to no passage and were removed.
        lang: the language the answer was asked for.
        refusal_score: the generator's probability of answering with the refusal sentence (None
            when not asked: refused by retrieval, or a generator that cannot score).
        extracted: the text quotes a passage verbatim instead of the model's words (the model
            refused after the refusal decision said the passages answer; ``rag.extractive``).
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    refused: bool = False
    unsupported: bool = False
    passages: tuple[Passage, ...] = ()
    invalid_citations: int = 0
    lang: str = "en"
    timings: Timings = field(default_factory=Timings)
    refusal_score: float | None = None
    extracted: bool = False


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file the ingestion could not index, with the reason a person can act on."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ``ingest`` run did. Paths are relative to the ingested folder."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[Skipped, ...] = ()
    chunks_added: int = 0
    chunks_reused: int = 0  # of chunks_added, those whose vector came from the file's previous version
    seconds: float = 0.0
