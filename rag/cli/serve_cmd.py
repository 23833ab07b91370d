"""``docqa serve``: the HTTP API (``rag.server``) over one index, with uvicorn.

It checks what can be checked before loading a model (tokens when listening beyond loopback, the
index's embedder), loads the embedder and the generator once, then serves until Ctrl+C. With no
index yet it still starts: the API answers 503 until documents are uploaded.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rag.cli.common import index_option, models_dir_option, settings_from

if TYPE_CHECKING:  # the heavy imports wait until the command runs (docqa --help stays fast)
    from fastapi import FastAPI

    from ingest.embed import Embedder
    from ingest.settings import Settings
    from rag.engine import Engine


@click.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--tokens-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="API tokens, one per line (also $DOCQA_API_TOKENS). Required beyond 127.0.0.1.",
)
@models_dir_option
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A docqa.toml file."
)
def serve(
    index_dir: Path | None,
    host: str,
    port: int,
    tokens_file: Path | None,
    models_dir: Path | None,
    config: Path | None,
) -> None:
    """Serve the index over HTTP: OpenAI-compatible chat with citations, retrieval, documents.

    Endpoints: POST /v1/chat/completions, GET /v1/models, POST /v1/retrieve, GET, POST and
    DELETE /v1/documents, GET /healthz. Any OpenAI client works: point its base URL at
    http://HOST:PORT/v1 and give a token as its API key.

    \b
    Example:
      docqa serve --index ./index
      DOCQA_API_TOKENS=$(cat ~/.docqa-token) docqa serve --host 0.0.0.0 --port 8080
      curl -s localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "docqa", "messages": [{"role": "user", "content": "What is SQ1?"}]}'
    """
    from ingest.embedders import embedder_name, load_embedder
    from ingest.store import check_index
    from rag.engine import open_engine
    from rag.server.auth import check_exposure, load_tokens

    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a port; use 1 to 65535", param_hint="--port")
    tokens = load_tokens(tokens_file, os.environ)
    check_exposure(host, tokens)  # before seconds of model loading
    _check_port(host, port)
    settings = settings_from(config, index_dir=index_dir, models_dir=models_dir)
    check_index(settings.index_dir, embedder_name(settings))  # a mismatch fails now, not per request
    embedder = functools.cache(lambda: load_embedder(settings))
    app = _app(settings, tokens, lambda: open_engine(settings, embedder=embedder()), embedder)
    if not app.state.backend.warm_up():
        click.echo(
            f"warning: no index at {settings.index_dir} yet; the API answers 503 until documents "
            "are uploaded (POST /v1/documents) or 'docqa ingest' builds it",
            err=True,
        )
    auth = f"{len(tokens)} token(s)" if tokens else "no token (loopback only)"
    click.echo(f"docqa serve: http://{host}:{port}/v1 over {settings.index_dir}, {auth}", err=True)
    _run(app, host, port)


def _check_port(host: str, port: int) -> None:
    """Fail before loading any model when ``host:port`` cannot be listened on (in use, no such
    address); uvicorn would say so only after the models are loaded."""
    from ingest.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host.strip("[]"), port), family=family):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({err.strerror or err}): stop what uses the port, "
            "or pick another with --port (or another --host)"
        ) from None


def _app(
    settings: Settings,
    tokens: tuple[str, ...],
    engine_factory: Callable[[], Engine],
    embedder_factory: Callable[[], Embedder],
) -> FastAPI:
    from rag.server.app import create_app

    return create_app(engine_factory, settings, tokens, embedder_factory=embedder_factory)


def _run(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
