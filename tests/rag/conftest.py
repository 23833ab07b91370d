"""Fixtures for the query engine's unit tests: a small in-memory index with the store's read API.

``MemoryIndex`` answers ``search_dense`` with exact cosine and ``search_lexical`` with a BM25-like
count of shared (accent-folded) words, over chunks embedded by the fake ``HashEmbedder``. It is a
test double passed in as an argument; integration tests use the real ``ingest.store``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from ingest.catalog import FileInfo
from ingest.records import Chunk
from tests.fakes import HashEmbedder
from tests.openai_server import running_openai_server


def _words(text: str) -> list[str]:
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return re.findall(r"\w+", folded)


class MemoryIndex:
    """The read side of ``ingest.store.Index`` over a list of chunks, all in memory."""

    def __init__(self, chunks: Sequence[Chunk], embedder) -> None:
        self.chunks = list(chunks)
        self.manifest = {"embedder": embedder.name, "dim": embedder.dim}
        self.embedder, self.dim = embedder.name, embedder.dim
        self._vectors = embedder.embed_documents([c.text for c in self.chunks])
        self.closed = False
        self.removed: set[str] = set()

    def files(self) -> list[FileInfo]:
        counts = Counter(c.source for c in self.chunks if c.id not in self.removed)
        return [FileInfo("/docs", s, "", 0, 0.0, n, 0, s) for s, n in sorted(counts.items())]

    def count(self) -> int:
        return len(self.chunks)

    def search_dense(self, query_vector: np.ndarray, k: int, *, sources=None) -> list[tuple[str, float]]:
        scores = self._vectors @ query_vector
        order = [i for i in np.argsort(-scores) if sources is None or self.chunks[i].source in sources][:k]
        return [(self.chunks[i].id, float(scores[i])) for i in order]

    def search_lexical(self, query: str, k: int, *, sources=None) -> list[tuple[str, float]]:
        terms = set(_words(query))
        n = len(self.chunks)
        scored = []
        for chunk in self.chunks:
            if sources is not None and chunk.source not in sources:
                continue
            words = _words(chunk.text)
            score = 0.0
            for term in terms & set(words):
                df = sum(term in _words(c.text) for c in self.chunks)
                score += words.count(term) * math.log(1 + (n - df + 0.5) / (df + 0.5))
            if score > 0:
                scored.append((chunk.id, score))
        scored.sort(key=lambda item: -item[1])
        return scored[:k]

    def get_chunks(self, ids: Sequence[str]) -> list:
        by_id = {c.id: c for c in self.chunks if c.id not in self.removed}
        return [by_id[i] for i in ids if i in by_id]

    def lead_ins(self, ids: Sequence[str], max_chars: int = 240) -> dict[str, str]:
        return {}  # every chunk starts its line

    def close(self) -> None:
        self.closed = True


def make_chunk(
    i: int, text: str, source: str = "manual.pdf", page: int | None = None, lang: str = "en"
) -> Chunk:
    return Chunk(
        id=f"c{i:03d}",
        source=source,
        text=text,
        start=0,
        end=len(text),
        section=i,
        position=i,
        page=page if page is not None else i + 1,
        heading="",
        lang=lang,
    )


MANUAL = [
    "The oscilloscope shows up to four channels; set the timebase with the slider.",
    "To measure a voltage, connect the signal to A1 and read the value in volts.",
    "The sine wave generator WG produces 5 Hz to 5 kHz with an amplitude of 3 volts.",
    "Para medir un voltaje, conecte la señal a A1 y lea el valor en voltios.",
    "El generador de onda sinusoidal WG produce de 5 Hz a 5 kHz.",
    "Install the software with apt install eyes17 on Debian or Ubuntu.",
    "The resistance of a component is measured between SEN and ground.",
    "Capacitance up to 10 microfarads is measured on the IN1 terminal.",
]


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=128)


@pytest.fixture
def index(embedder) -> MemoryIndex:
    chunks = [make_chunk(i, t, lang="es" if i in (3, 4) else "en") for i, t in enumerate(MANUAL)]
    return MemoryIndex(chunks, embedder)


@pytest.fixture
def openai_server():
    """A local OpenAI-compatible server streaming ``pieces``; ``url`` is its /v1 root."""
    with running_openai_server() as srv:
        yield srv


@pytest.fixture(scope="session")
def qwen(qwen_folder):
    """The real default generator, loaded once (about 5 s; each answer costs seconds: keep few)."""
    from rag.generate import TransformersGenerator

    return TransformersGenerator(str(qwen_folder), name="qwen2.5-coder-0.5b-instruct")
