"""The ``docqa serve`` application, built from its parts so tests can pass fakes.

>>> app = create_app(lambda: open_engine(settings), settings, tokens=())     # doctest: +SKIP

The app is FastAPI with: ``rag.server.auth.TokenGate`` in front (a bearer token for every path
but ``/healthz`` when tokens are given), then ``rag.server.limits.BodyLimit``, then the routes of
``rag.server.routes``, whose errors ``rag.server.errors`` turns into OpenAI-style JSON bodies. The
interactive docs pages are off: they load scripts from a CDN, and docqa stays offline.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from ingest.embed import Embedder
from ingest.settings import Settings
from rag.engine import Engine
from rag.server.auth import TokenGate
from rag.server.backend import Backend
from rag.server.errors import install_error_handlers
from rag.server.limits import BodyLimit
from rag.server.routes import router

OPEN_PATHS = frozenset({"/healthz"})  # served without a token


def create_app(
    engine_factory: Callable[[], Engine],
    settings: Settings,
    tokens: tuple[str, ...] = (),
    *,
    embedder_factory: Callable[[], Embedder] | None = None,
) -> FastAPI:
    """The ASGI app of ``docqa serve``.

    Args:
        engine_factory: opens the engine (raises IndexNotFound while there is no index; called
            again at later requests until it succeeds).
        settings: the frozen settings (index folder, ``serve_max_body_mb``, ``max_file_mb``).
        tokens: accepted bearer tokens; empty: no token asked (loopback only, see
            ``rag.server.auth.check_exposure``, which the caller runs).
        embedder_factory: the embedder for indexing uploads before any index exists (default:
            ``ingest.embedders.load_embedder(settings)``).

    The backend is ``app.state.backend``; it is closed when the app shuts down.
    """
    if embedder_factory is None:

        def embedder_factory() -> Embedder:
            from ingest.embedders import load_embedder

            return load_embedder(settings)

    backend = Backend(settings, engine_factory, embedder_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FastAPI(
        title="docqa",
        summary="Cited answers from your own manuals, offline; OpenAI-compatible chat completions.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.backend = backend
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=int(settings.serve_max_body_mb * 1_000_000))
    app.add_middleware(TokenGate, tokens=tuple(tokens), open_paths=OPEN_PATHS)  # added last: outermost
    return app
