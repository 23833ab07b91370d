"""The app's heavy objects, loaded once per process and shared by every browser session.

The embedder and the generator are loaded with ``st.cache_resource`` keyed on the settings that
pick them, so changing the number of passages never reloads a model and choosing another
generator loads it once. The engine (an open index plus those two) is cached on the settings and
on the index folder's file stamps, so after an upload or a delete the next question reopens the
index (cheap) while the models stay loaded.

Ready-made parts can be handed in through ``st.session_state[EMBEDDER_KEY]`` and
``st.session_state[GENERATOR_KEY]`` (an ``Embedder`` and a ``Generator``, e.g. ones that run on
another service, or the deterministic fakes the app's tests use); when present they are used
instead of loading the configured models.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ingest.embed import Embedder
from ingest.embedders import load_embedder
from ingest.layout import CHANGING_FILES
from ingest.settings import Settings
from rag.engine import Engine, open_engine
from rag.generate import Generator, load_generator

EMBEDDER_KEY = "docqa_embedder"
"""Session-state key of an ``Embedder`` to use instead of loading ``settings.embedder``."""
GENERATOR_KEY = "docqa_generator"
"""Session-state key of a ``Generator`` to use instead of loading ``settings.generator``."""


@st.cache_resource(show_spinner="Loading the embedding model…", max_entries=2)
def _embedder(key: tuple, _settings: Settings) -> Embedder:
    return load_embedder(_settings)


@st.cache_resource(show_spinner="Loading the language model…", max_entries=2)
def _generator(key: tuple, _settings: Settings) -> Generator:
    return load_generator(_settings)


def _close(engine: Engine) -> None:
    engine.close()


@st.cache_resource(show_spinner="Opening the index…", max_entries=4, on_release=_close)
def _engine(
    settings: Settings, stamp: tuple, parts: tuple[int, int], _embedder: Embedder, _generator
) -> Engine:
    engine = open_engine(settings, embedder=_embedder, generator=_generator)
    if _generator is not None:  # an engine that answers: its prompt prefixes prefilled now
        engine.warm_up()  # (once per generator: the next engine finds them kept, ~0.1 s)
    return engine


def embedder_key(settings: Settings) -> tuple:
    """The settings that pick an embedder; two settings with the same key share one model."""
    return (
        settings.embedder,
        settings.embed_backend,
        str(settings.models_dir),
        settings.threads,
        settings.embed_batch_size,
    )


def generator_key(settings: Settings) -> tuple:
    """The settings that pick a generator; two settings with the same key share one model."""
    return (
        settings.generator,
        settings.openai_base_url,
        settings.openai_model,
        settings.openai_api_key_env,
        str(settings.models_dir),
        settings.threads,
    )


def get_embedder(settings: Settings) -> Embedder:
    """The handed-in embedder, else ``settings.embedder`` loaded once per process.

    Raises:
        ModelError: the model is missing or cannot be loaded (the message says how to fix it).
    """
    injected = st.session_state.get(EMBEDDER_KEY)
    if injected is not None:
        return injected
    return _embedder(embedder_key(settings), settings)


def get_generator(settings: Settings) -> Generator:
    """The handed-in generator, else ``settings.generator`` loaded once per process.

    Raises:
        ModelError, GeneratorUnavailable: the model is missing, broken or unreachable.
    """
    injected = st.session_state.get(GENERATOR_KEY)
    if injected is not None:
        return injected
    return _generator(generator_key(settings), settings)


def index_stamp(index_dir: Path) -> tuple:
    """Size and modification time of the index's files: changes whenever the index does.

    >>> index_stamp(Path("/no/such/index"))
    ()
    """
    stamp = []
    for name in CHANGING_FILES:
        path = Path(index_dir) / name
        if path.exists():
            info = path.stat()
            stamp.append((name, info.st_size, info.st_mtime_ns))
    return tuple(stamp)


def get_engine(settings: Settings, generator: Generator | None = None) -> Engine:
    """An engine on the current state of ``settings.index_dir``.

    Args:
        settings: the settings as the user set them in this session.
        generator: the generator to answer with; None for retrieval only (then the engine would
            load ``settings.generator`` itself if asked to answer, so pass one for answering).

    Raises:
        IndexNotFound: there is no index yet.
        EmbedderMismatch, IndexCorrupt, ModelError: as ``rag.engine.open_engine``.
    """
    embedder = get_embedder(settings)
    stamp = index_stamp(settings.index_dir)
    return _engine(settings, stamp, (id(embedder), id(generator)), embedder, generator)
