"""Embedders: text -> L2-normalised float32 vectors, with the model's own tokenizer exposed.

The ``Embedder`` protocol is what ingestion and retrieval need: vectors for documents and for
queries (models such as EmbeddingGemma use a different prompt for each), and the token spans of
a text so the chunker can keep every chunk within the model's maximum input.
``SentenceTransformerEmbedder`` runs any sentence-transformers model from a local folder (the
bundled ones) or a name the user's own cache can load. It never downloads: the offline switches
are set when the package is imported. Building the embedder the settings choose is
``ingest.embedders.load_embedder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ingest.errors import ModelError

# EmbeddingGemma's document prompt is "title: none | text: ": the title goes where "none" is.
# Titles measured in bench/title_ablation.py (nDCG@10 up on the sample manuals, the scanned-page
# questions and weechat's FAQ, in both languages).
TITLE_FIELD = "title: none"
TITLE_CHARS = 160


@runtime_checkable
class Embedder(Protocol):
    """What docqa needs of an embedding model.

    Attributes:
        name: identity stored in the index manifest; an index is never queried with another.
        dim: vector size.
        max_tokens: the most text tokens one input may hold (prompt and special tokens excluded).
    """

    name: str
    dim: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised. ``titles``: each text's title (its
        heading path), used by models whose document prompt has a title field, else ignored."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Same as ``embed_documents`` but with the model's query prompt, if it has one."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, special tokens excluded."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU.

    Args:
        model: a local folder or a model name (see ``ingest.registry.resolve_model``).
        name: identity for the manifest; defaults to ``model``'s folder name.
        batch_size: texts per forward pass.
        threads: torch CPU threads (0 leaves torch's default).
    """

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        batch_size: int = 16,
        threads: int = 0,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        try:
            self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"cannot load embedder {model!r}: {err}. Give a sentence-transformers folder or "
                "a bundled name ('docqa models list')"
            ) from None
        self.name = name or Path(model).name
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension())
        prompts = self._model.prompts or {}
        self._query_prompt = prompts.get("query") or prompts.get("Retrieval-query") or ""
        self._doc_prompt = prompts.get("document") or prompts.get("Retrieval-document") or ""
        # Whether the document prompt has a title field (EmbeddingGemma's "title: none | text: "):
        # then a chunk's heading path is its title, and its vector depends on it.
        self.titles = TITLE_FIELD in self._doc_prompt
        tokenizer = self._model.tokenizer
        prompt_tokens = max(
            len(tokenizer(p, add_special_tokens=False)["input_ids"])
            for p in (self._query_prompt, self._doc_prompt, "")
        )
        specials = tokenizer.num_special_tokens_to_add(pair=False)
        self.max_tokens = int(self._model.max_seq_length) - prompt_tokens - specials
        self._tokenizer = tokenizer

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt=prompt or None,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> np.ndarray:
        if titles is None or not self.titles:
            return self._encode(texts, self._doc_prompt)
        prompts = (self._doc_prompt.replace(TITLE_FIELD, f"title: {title_of(t)}") for t in titles)
        return self._encode([p + t for p, t in zip(prompts, texts, strict=True)], "")  # prompt inside

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]


def title_of(heading: str) -> str:
    """The title a chunk gives the embedder: its heading path on one line, at most
    ``TITLE_CHARS`` characters (the end, the nearest heading, kept), "none" when it has none, as
    EmbeddingGemma's model card writes a missing title.

    >>> title_of("Install >  On Linux"), title_of("")
    ('Install > On Linux', 'none')
    """
    title = " ".join(heading.split())
    if len(title) > TITLE_CHARS:
        title = "…" + title[-(TITLE_CHARS - 1) :]
    return title or "none"


def uses_titles(embedder: object) -> bool:
    """Whether ``embedder`` reads a document's title (``SentenceTransformerEmbedder.titles``); an
    embedder without the attribute (a fake, another implementation) does not."""
    return bool(getattr(embedder, "titles", False))


def reuse_key(heading: str, text: str) -> str:
    """What a chunk's vector depends on besides the model: its heading (a title) and its text; a
    changed file's chunk keeps its old vector only when both are the same."""
    return f"{heading}\x00{text}"


def backend_name(name: str, backend: str) -> str:
    """The embedder name an index records for ``backend``: int8 vectors differ, so they get their own.

    >>> backend_name("embeddinggemma-300m", "onnx"), backend_name("embeddinggemma-300m", "onnx-int8")
    ('embeddinggemma-300m', 'embeddinggemma-300m+onnx-int8')
    """
    return f"{name}+{backend}" if backend == "onnx-int8" else name
