"""The embedder a user chose, built from the settings, and the check that an index was built with it.

Every entry point (the CLI, the app, the engine, the benchmarks) gets its embedder from
``load_embedder(settings)``: ``settings.embedder`` (a bundled name, a local folder or a model name)
run by ``settings.embed_backend`` with ``settings.threads`` and ``settings.embed_batch_size``. An
index records the name of the embedder it was built with; ``check_embedder`` is the one place that
compares it with another and says how to fix a mismatch (``ingest.store.open_index`` and
``ingest.store.check_index`` call it, ``rag.engine.open_engine`` too).

>>> load_embedder(Settings(embedder="all-minilm-l6-v2")).dim   # doctest: +SKIP
384

This module does not define embedders (``ingest.embed``, ``ingest.embed_onnx`` do) or fetch models
(``ingest.provision`` does).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from ingest.embed import Embedder, SentenceTransformerEmbedder, backend_name
from ingest.errors import EmbedderMismatch
from ingest.registry import resolve_model
from ingest.settings import Settings


def load_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings`` choose; ``embed_backend`` "onnx" / "onnx-int8" runs it with ONNX
    Runtime (exported once into ``models_dir/.derived``; see ``ingest.embed_onnx``).

    Raises:
        ModelError: the model is missing or cannot be loaded (the message says how to fix it).
    """
    choice, models_dir = settings.embedder, Path(settings.models_dir)
    path = resolve_model(choice, "embedder", models_dir)
    name = choice if not Path(choice).expanduser().is_dir() else Path(path).name
    batch_size, threads = settings.embed_batch_size, settings.threads
    if settings.embed_backend == "torch":
        return SentenceTransformerEmbedder(path, name=name, batch_size=batch_size, threads=threads)
    from ingest.embed_onnx import DERIVED, OnnxEmbedder

    return OnnxEmbedder(
        path,
        cache_dir=models_dir / DERIVED,
        backend=settings.embed_backend,
        name=name,
        batch_size=batch_size,
        threads=threads,
    )


@dataclass(frozen=True)
class Prepared:
    """What ``prepare_embedder`` did for one embedder."""

    embedder: str
    backend: str
    exported: bool  # False: nothing to do (torch, or the export was there and current)
    seconds: float
    peak_rss_mb: float  # this process's peak resident memory after the export


def prepare_embedder(settings: Settings) -> Prepared:
    """Do now what the first use of ``settings``' embedder would do: export it for an ONNX
    ``embed_backend`` into ``models_dir/.derived`` (minutes for EmbeddingGemma), so that ingestion
    and the app start without that wait. ``docqa models fetch`` calls it; a current export is
    checked by its stamp without loading the model.

    Raises:
        ModelError: the model is missing, or the export failed (the message says to use torch).
    """
    start = time.perf_counter()
    needed = export_needed(settings)
    if needed:
        load_embedder(settings)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Prepared(settings.embedder, settings.embed_backend, needed, time.perf_counter() - start, peak)


def export_needed(settings: Settings) -> bool:
    """Whether the first use of ``settings``' embedder would export it (an ONNX backend whose
    export is missing or stale); read from the export's stamp, without loading the model."""
    if settings.embed_backend == "torch":
        return False
    from ingest.embed_onnx import DERIVED, is_exported

    path = resolve_model(settings.embedder, "embedder", Path(settings.models_dir))
    return not is_exported(Path(path), Path(settings.models_dir) / DERIVED, settings.embed_backend)


def embedder_name(settings: Settings) -> str | None:
    """The name an index records for the embedder ``settings`` choose, known before loading it;
    None for a model folder (its name is known once loaded).

    >>> embedder_name(Settings(embedder="embeddinggemma-300m", embed_backend="onnx-int8"))
    'embeddinggemma-300m+onnx-int8'
    """
    if Path(settings.embedder).expanduser().is_dir():
        return None
    return backend_name(settings.embedder, settings.embed_backend)


def check_embedder(
    index_dir: Path, built: str, built_dim: int, *, name: str | None, dim: int | None = None
) -> None:
    """Refuse an index built with embedder ``built`` (vectors of ``built_dim``) for another one.

    Args:
        index_dir: the index folder (for the message).
        built, built_dim: what the index was built with.
        name: the embedder asked for (None: any).
        dim: the vector size asked for (None: any).

    Raises:
        EmbedderMismatch: with the command that rebuilds the index, or the flag that uses it.
    """
    if (name and name != built) or (dim and dim != built_dim):
        index_dir = Path(index_dir).expanduser().absolute()
        if name and _model_of(name) == _model_of(built) and name != built:
            # Same model, other weights: torch/onnx (fp32) vectors or onnx-int8 vectors.
            raise EmbedderMismatch(
                f"index at {index_dir} was built with {built} (embed_backend {_backend_of(built)!r}) "
                f"and the settings ask for {name} (embed_backend {_backend_of(name)!r}; "
                "'onnx-int8' is the default); their vectors differ. Either set embed_backend = "
                f"{_backend_of(built)!r} in the config (or DOCQA_EMBED_BACKEND={_backend_of(built)}) to use "
                f"this index, or rebuild it: 'docqa ingest FOLDER --index NEWDIR'"
            )
        asked = f"{name or built}" + (f" (dim {dim})" if dim and dim != built_dim else "")
        raise EmbedderMismatch(
            f"index at {index_dir} was built with {built} (dim {built_dim}); you asked for {asked}; "
            f"rebuild with 'docqa ingest FOLDER --index NEWDIR --embedder {name or built}' "
            f"or use --embedder {built}"
        )


def _model_of(name: str) -> str:
    """``embeddinggemma-300m+onnx-int8`` -> ``embeddinggemma-300m``."""
    return name.split("+", 1)[0]


def _backend_of(name: str) -> str:
    """The ``embed_backend`` that gives an index's embedder name ("torch" for the fp32 vectors,
    which "onnx" gives too)."""
    return name.split("+", 1)[1] if "+" in name else "torch"
