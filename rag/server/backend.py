"""What ``docqa serve`` serves from: one engine, one generation worker, one writer at a time.

``Backend`` opens the engine on first use (so a server started before its index exists answers
503 until documents arrive, then works), and keeps the threads apart:

- generation is CPU-heavy and one engine's generator is not shared: every answer runs on one
  worker thread, in arrival order (``answer``), and its pieces are handed to the event loop;
- retrieval, listing and health run on the event loop's thread pool and take no lock of this
  module: the store allows concurrent readers (``ingest.store.Index`` is thread-safe, the catalog
  is in WAL mode), so they never wait behind an answer or an upload;
- uploads and deletions hold a per-index write lock in this process (one runs at a time, the
  others wait), on top of the store's own lock file, which makes a concurrent ``docqa ingest``
  fail fast with ``IndexBusy`` (409).

It calls library functions only: ``ingest.uploads.index_uploads`` to save and index uploads,
``ingest.pipeline.remove_document`` and ``ingest.uploads.delete_upload`` to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ingest.catalog import FileInfo
from ingest.embed import Embedder
from ingest.errors import IndexNotFound
from ingest.pipeline import remove_document
from ingest.records import Answer, IngestReport, Message, Passage, Scope
from ingest.settings import Settings
from ingest.uploads import delete_upload, index_uploads, uploads_dir
from rag.engine import Engine
from rag.server.errors import ApiError
from rag.server.schemas import document_id

_END = object()


class Backend:
    """The server's engine and workers.

    Args:
        settings: the frozen settings (index folder, limits).
        engine_factory: opens the engine (``rag.engine.open_engine`` with the settings); raises
            IndexNotFound while there is no index. Called until it succeeds.
        embedder_factory: the embedder for indexing uploads while no engine is open (there is no
            index yet); with an engine open, the engine's own embedder is used.
    """

    def __init__(
        self,
        settings: Settings,
        engine_factory: Callable[[], Engine],
        embedder_factory: Callable[[], Embedder],
    ) -> None:
        self.settings = settings
        self._engine_factory = engine_factory
        self._embedder_factory = embedder_factory
        self._engine: Engine | None = None
        self._opening = threading.Lock()
        self._writing = threading.Lock()
        self._generation = ThreadPoolExecutor(1, thread_name_prefix="docqa-generate")

    # -- reading ------------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The engine, opened on first call. Raises IndexNotFound while there is no index."""
        if self._engine is None:
            with self._opening:
                if self._engine is None:
                    self._engine = self._engine_factory()
        return self._engine

    def warm_up(self) -> bool:
        """Open the engine and warm it up (``Engine.warm_up``: the generator loaded, its prompt
        prefixes prefilled, one search run), so the first requests do not pay for loading (the
        language detector's model, the vectors: about 15 s on a busy CPU) nor for the prompt's
        rules and examples; False when there is no index yet."""
        try:
            engine = self.engine()
        except IndexNotFound:
            return False
        self._generation.submit(engine.warm_up).result()  # the generator's own thread
        return True

    def health(self) -> dict[str, Any]:
        """Index folder, counts and model names. Raises IndexNotFound."""
        engine = self.engine()
        files = engine.index.files()
        generator = self.settings.generator
        if generator == "openai":
            generator = f"openai:{self.settings.openai_model or '(the server default)'}"
        return {
            "status": "ok",
            "index": str(self.settings.index_dir),
            "documents": len(files),
            "chunks": engine.index.count(),
            "embedder": engine.embedder.name,
            "generator": generator,
        }

    def documents(self) -> list[FileInfo]:
        """The indexed files, by cited name."""
        return sorted(self.engine().index.files(), key=lambda f: f.source)

    def retrieve(self, query: str, k: int | None, scope: Scope | None) -> list[Passage]:
        """The best passages for ``query`` (``Engine.retrieve``); runs on the caller's thread."""
        return self.engine().retrieve(query, k=k, scope=scope)

    async def answer(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        k: int | None = None,
        language: str | None = None,
        scope: Scope | None = None,
    ) -> AsyncIterator[str | Answer]:
        """``Engine.stream`` on the generation worker: its pieces, then the ``Answer``.

        Answers wait for the worker in arrival order. If the caller stops reading (the client went
        away), the worker stops generating at the next piece.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            if stop.is_set():  # the caller left while this answer waited for the worker
                loop.call_soon_threadsafe(queue.put_nowait, _END)
                return
            try:
                engine = self.engine()
                with contextlib.closing(
                    engine.stream(question, history=history, k=k, language=language, scope=scope)
                ) as items:
                    for item in _until(items, stop):
                        loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as err:  # handed to the caller, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, _Failed(err))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        loop.run_in_executor(self._generation, work)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()

    # -- writing ------------------------------------------------------------------------------

    def upload(self, files: Sequence[tuple[str, bytes]]) -> IngestReport:
        """Save and index checked uploads (``ingest.uploads.index_uploads``), one batch at a time.

        Raises IndexBusy when another process writes the index (nothing saved).
        """
        with self._writing:
            embedder = self._engine.embedder if self._engine is not None else self._embedder_factory()
            return index_uploads(self.settings.index_dir, files, embedder, self.settings)

    def delete(self, ref: str) -> FileInfo:
        """Remove one document from the index, and its saved copy if it was uploaded.

        Args:
            ref: the document's id (``GET /v1/documents``), its cited name, or its path in its folder.

        Raises:
            ApiError: 404 when nothing matches, 409 when a path matches several documents.
        """
        with self._writing:
            info = find_document(self.documents(), ref)
            path = Path(info.root, info.path)
            if not remove_document(self.settings.index_dir, path, self.settings):
                raise ApiError(404, f"{info.source} is not in the index any more", "document_not_found")
            delete_upload(uploads_dir(self.settings.index_dir), path)
            return info

    def close(self) -> None:
        """Stop the worker (after the answer in progress) and close the engine."""
        self._generation.shutdown(wait=True, cancel_futures=True)
        if self._engine is not None:
            self._engine.close()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _until(items: Iterator[Any], stop: threading.Event) -> Iterator[Any]:
    for item in items:
        if stop.is_set():
            return
        yield item


def find_document(files: Sequence[FileInfo], ref: str) -> FileInfo:
    """The one file ``ref`` names: by id, else by cited name, else by path in its folder.

    >>> files = [FileInfo("/d", p, "", 0, 0.0, 1, 0, p) for p in ("en/a.md", "b.md")]
    >>> find_document(files, "b.md").path, find_document(files, document_id(files[0])).path
    ('b.md', 'en/a.md')

    Raises:
        ApiError: 404 when none matches, 409 when several do (use the id).
    """
    for match in (
        [f for f in files if document_id(f) == ref],
        [f for f in files if f.source == ref],
        [f for f in files if f.path == ref],
    ):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise ApiError(
                409, f"{ref!r} names {len(match)} documents; delete by id (GET /v1/documents)", "ambiguous"
            )
    raise ApiError(
        404, f"no indexed document {ref!r}; GET /v1/documents lists ids and names", "document_not_found"
    )
