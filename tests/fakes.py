"""Deterministic fakes for fast unit tests, passed in as arguments (never patched in).

``HashEmbedder`` maps each word to a seeded random vector and sums them, so texts that share
words are close; ``ReplayGenerator`` replays queued replies and records the prompts it got.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np

from ingest.records import Message

_WORD = re.compile(r"\S+")


class HashEmbedder:
    """A bag-of-words embedder: same text, same vector; shared words, similar vectors."""

    def __init__(self, dim: int = 64, max_tokens: int = 32, name: str = "hash-embedder") -> None:
        self.name = name
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls: list[int] = []

    def _vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text):
                out[i] += self._vector(re.sub(r"\W", "", word) or word)
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
        return out

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> np.ndarray:
        return self._embed(texts)  # no title field: titles change nothing, as with MiniLM

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]


class TitledHashEmbedder(HashEmbedder):
    """A ``HashEmbedder`` with a title field, as EmbeddingGemma has: a document's title (its heading
    path) is part of what it embeds; records the titles it was given."""

    titles = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen_titles: list[str] = []

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> np.ndarray:
        titles = list(titles) if titles is not None else [""] * len(texts)
        self.seen_titles += titles
        return self._embed([f"{t} {x}" for t, x in zip(titles, texts, strict=True)])


class ReplayGenerator:
    """Streams queued replies word by word and records every prompt it was given."""

    name = "replay"
    context_window = 4096

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []

    def enqueue(self, reply: str) -> None:
        self.replies.append(reply)

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 256) -> Iterator[str]:
        self.prompts.append(list(messages))
        reply = self.replies.pop(0) if self.replies else "I cannot answer from the documents."
        yield from re.findall(r"\S+\s*", reply)

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))


class DoubtingGenerator(ReplayGenerator):
    """A ``ReplayGenerator`` that also scores continuations: its probability of ``text`` is fixed."""

    def __init__(self, probability: float, *replies: str) -> None:
        super().__init__(*replies)
        self.probability = probability
        self.asked: list[str] = []
        self.avoided: list[str] = []  # the ``avoid`` of each stream call

    def continuation_probability(self, messages: Sequence[Message], text: str) -> float:
        self.asked.append(text)
        return self.probability

    def stream(
        self, messages: Sequence[Message], max_new_tokens: int = 256, *, avoid: str = ""
    ) -> Iterator[str]:
        self.avoided.append(avoid)
        yield from super().stream(messages, max_new_tokens)
