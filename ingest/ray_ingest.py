"""Ingestion with Ray: files are read, chunked and embedded on Ray workers, written here.

``ingest_folder_on_ray`` is ``ingest.pipeline.ingest_folder`` with the heavy work spread over a
Ray cluster (``docqa ingest FOLDER --ray [ADDRESS]``). This process, the driver, does what the
local pipeline does: it opens the index, scans the folder and plans the run (new, changed, moved,
gone), and its one ``ingest.writer.Writer`` writes every file. Only loading, chunking and embedding
move: one ``_EmbedActor`` per worker loads the embedder once (from the local model cache, never
downloading) and turns a file into its chunks and the vectors of its new text.

Crash safety and incrementality hold by construction: the plan, the writer and its transactions
are the local pipeline's own code (the writer here is a ``Writer`` whose only change is where a
file's chunks and vectors come from). An interrupted run leaves the previous index usable;
unchanged files are not sent to a worker; a changed file's unchanged chunk texts keep their
vectors (the worker is told which texts the index already has and does not embed them).

Memory stays bounded: at most ``in_flight`` files are out at once (submitted and not yet
written), each worker has at most two queued (``ray.wait`` says which are done), and results are
written in plan order, so the run's outcome (which of two identical files is indexed, the order of
the report) is the local pipeline's. A file a worker cannot read is skipped with its reason, as
locally; a worker that dies (a crashing parser, out of memory) is restarted and the file retried
once, then skipped with the reason.

Not done here: copying files or models to the nodes. Every node must see the folder at the same
path (a shared filesystem) and have docqa and its models installed; a file a worker cannot see is
skipped with a reason saying so. Ray is imported only by this module, and only when it runs.
Ray's usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0`` unless the user set it)
and a local runtime starts without its dashboard, on the loopback address.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ingest.chunk import chunk_limit, chunk_sections
from ingest.embed import reuse_key, uses_titles
from ingest.errors import DocqaError, LoadError, ModelError
from ingest.load import load_file_with_warnings
from ingest.ocr import load_ocr
from ingest.offline import OFFLINE_SWITCHES
from ingest.records import Chunk, FileRecord, IngestReport, Skipped
from ingest.settings import Settings
from ingest.writer import Progress, Writer, _Pending

__all__ = ["RayOptions", "RayRun", "RayUnavailable", "ingest_folder_on_ray"]

_QUEUED_PER_WORKER = 2  # calls queued on one actor: it starts its next file without a round trip
_READY_SECONDS = 600.0  # the workers' model loading, at most
_POLL_SECONDS = 0.2  # while waiting for the next file in order, keep idle workers fed this often
_CONNECT_SECONDS = 5.0  # a cluster's address must answer within this


class RayUnavailable(DocqaError):
    """Ray cannot be started or reached, or cannot run the workers asked for."""


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Where and how wide to run.

    Args:
        address: None starts a local Ray runtime in this process; else ``auto``, ``ray://HOST:PORT``
            (Ray Client) or a cluster's GCS address ``HOST:PORT``.
        workers: embedder actors, one CPU each; None: every CPU of the cluster (local: this
            machine's CPUs).
        in_flight: files submitted and not yet written, at most; None: 4 per worker.
    """

    address: str | None = None
    workers: int | None = None
    in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise RayUnavailable(f"bad --ray-workers {self.workers}: use 1 or more")
        if self.in_flight is not None and self.in_flight < 1:
            raise RayUnavailable(f"bad in_flight {self.in_flight}: use 1 or more")


@dataclass(frozen=True, slots=True)
class RayRun:
    """How a Ray run went: where files were read and how long Ray took to get ready.

    ``files_by_node`` counts the files each node read (by Ray node id), ``startup_seconds`` is
    the time from ``ray.init`` until every worker had loaded its model.
    """

    address: str
    workers: int
    startup_seconds: float
    files_by_node: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _FileResult:
    """What a worker made of one file: chunks and new vectors, or why it could not."""

    path: str
    node: str
    chunks: tuple[Chunk, ...] = ()
    pages: int = 0
    warnings: tuple[str, ...] = ()
    embedded: tuple[int, ...] = ()  # positions in ``chunks`` of the rows of ``vectors``
    vectors: np.ndarray | None = None
    unreadable: str = ""  # not the content's fault (vanished, permissions): retried next run
    visible: bool = True  # whether the worker saw the file at all
    content_error: str = ""  # recorded in the catalog as skipped, like the local pipeline
    chunk_error: str = ""


def ingest_folder_on_ray(
    folder: Path,
    index_dir: Path,
    settings: Settings,
    options: RayOptions,
    *,
    progress: Callable[[Progress], None] | None = None,
    remove_missing: bool = True,
    exclude: Sequence[str] = (),
) -> tuple[IngestReport, RayRun]:
    """Bring the index up to date with a folder, reading and embedding files on Ray workers.

    Same arguments and report as ``ingest.pipeline.ingest_folder`` (the embedder is the one
    ``settings`` choose, loaded by each worker), plus where to run.

    Raises:
        RayUnavailable: Ray cannot start, the address cannot be reached, or the cluster has fewer
            CPUs than workers asked for.
        ModelError: a worker cannot load the embedder.
        NothingToIndex, EmbedderMismatch, IndexCorrupt, IndexBusy: as the local pipeline.
    """
    from ingest.pipeline import ingest_folder

    ray = _import_ray()
    started = time.perf_counter()
    address = _init(ray, options)
    try:
        workers = _worker_count(ray, options)
        actors = _start_workers(ray, settings, workers)
        name, dim, max_tokens, titles = _describe(ray, actors)
        startup = time.perf_counter() - started
        stream = _Stream(ray, actors, options.in_flight or 4 * workers)
        vectors = _RemoteVectors(name, dim, max_tokens, titles)
        make_writer = partial(_RayWriter, stream=stream)
        report = ingest_folder(
            folder,
            index_dir,
            vectors,
            settings,
            progress=progress,
            remove_missing=remove_missing,
            exclude=exclude,
            make_writer=make_writer,
        )
        run = RayRun(address, workers, round(startup, 3), dict(sorted(stream.files_by_node.items())))
        for actor in actors:
            ray.kill(actor)
        return report, run
    finally:
        ray.shutdown()


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'docqa[ray]' (or 'ray[default]')") from None
    return ray


def _init(ray: Any, options: RayOptions) -> str:
    """Start a local runtime or connect; returns a description of where."""
    env = {**OFFLINE_SWITCHES, "RAY_USAGE_STATS_ENABLED": os.environ["RAY_USAGE_STATS_ENABLED"]}
    common = {
        "runtime_env": {"env_vars": env},
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # workers' output would tear the progress bar
    }
    try:
        if options.address is None:
            cpus = options.workers or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", **common)
            return "local"
        _check_reachable(options.address)
        ray.init(address=options.address, **common)
        return options.address
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = "a local Ray runtime" if options.address is None else f"the Ray cluster at {options.address}"
        raise RayUnavailable(
            f"cannot start or reach {where} ({type(err).__name__}: {err}); check the address "
            "('ray status' on the head node), or leave out ADDRESS to run Ray on this machine"
        ) from None


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at ``HOST:PORT`` (Ray itself retries for minutes).

    >>> _check_reachable("auto")  # found by Ray on this machine: nothing to check here
    >>> _check_reachable("head-node")
    Traceback (most recent call last):
    ingest.ray_ingest.RayUnavailable: bad Ray address 'head-node': use auto, ray://HOST:PORT or HOST:PORT
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"bad Ray address {address!r}: use auto, ray://HOST:PORT or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_SECONDS):
            pass
    except OSError as err:
        raise RayUnavailable(
            f"nothing answers at {address} ({err.strerror or err}); start the cluster there "
            "('ray start --head' prints its address) or check the address"
        ) from None


def _worker_count(ray: Any, options: RayOptions) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 0))
    workers = options.workers or cpus
    if workers < 1 or workers > cpus:
        raise RayUnavailable(
            f"{workers} Ray workers asked for but the cluster has {cpus} CPUs (one per worker); "
            "use --ray-workers with at most that many, or add nodes"
        )
    return workers


def _start_workers(ray: Any, settings: Settings, workers: int) -> list[Any]:
    actor = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=0)(_EmbedActor)
    # One torch thread per worker: a worker is one CPU; more would fight the others for cores.
    one_thread = settings.replace(threads=1)
    return [actor.remote(one_thread) for _ in range(workers)]


def _describe(ray: Any, actors: list[Any]) -> tuple[str, int, int, bool]:
    """Wait for every worker's model; its (name, dim, max_tokens, titles), the same on all of them."""
    try:
        described = ray.get([a.describe.remote() for a in actors], timeout=_READY_SECONDS)
    except ray.exceptions.GetTimeoutError:
        raise RayUnavailable(
            f"the Ray workers were not ready after {_READY_SECONDS:.0f} s; check 'ray status' "
            "(are the nodes' CPUs taken by other jobs?)"
        ) from None
    except ray.exceptions.RayError as err:
        raise RayUnavailable(f"a Ray worker could not start: {_first_line(err)}") from None
    for kind, *rest in described:
        if kind == "error":
            raise ModelError(f"a Ray worker could not load the embedder: {rest[0]}")
    specs = {tuple(rest) for _, *rest in described}
    if len(specs) != 1:
        raise ModelError(f"the Ray workers loaded different embedders {sorted(specs)}; install the same "
                         "models on every node")  # fmt: skip
    name, dim, max_tokens, titles = specs.pop()
    return name, dim, max_tokens, titles


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


class _EmbedActor:
    """A Ray worker: loads the embedder once, then reads, chunks and embeds files.

    Errors are returned as data (``describe``'s "error", ``_FileResult``'s reasons), never raised,
    so the driver shows docqa's own message rather than a remote traceback.
    """

    def __init__(self, settings: Settings) -> None:
        from ingest.embedders import load_embedder

        self._settings, self._error = settings, ""
        try:
            self._embedder = load_embedder(settings)
        except DocqaError as err:
            self._error = str(err)
            return
        self._size, self._overlap = chunk_limit(
            self._embedder.max_tokens, settings.chunk_tokens, settings.chunk_overlap
        )
        # Read as the local Writer reads: the same OCR and table settings.
        self._ocr = load_ocr(settings.ocr, settings.ocr_dpi)
        self._tables = settings.tables == "on"

    def describe(self) -> tuple:
        if self._error:
            return ("error", self._error)
        e = self._embedder
        return ("ok", e.name, e.dim, e.max_tokens, uses_titles(e))

    def read(self, root: str, record: FileRecord, known: frozenset[str]) -> _FileResult:
        """Load, chunk and embed one file; texts in ``known`` are left for the driver's vectors."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        path = Path(root, record.path)
        try:
            sections, warnings = load_file_with_warnings(path, record.path, self._ocr, tables=self._tables)
        except LoadError as err:
            if isinstance(err.__cause__, OSError) or not path.is_file():
                return _FileResult(record.path, node, unreadable=str(err), visible=path.exists())
            return _FileResult(record.path, node, content_error=str(err))
        try:
            chunks = chunk_sections(
                sections, self._embedder, self._size, self._overlap, file_sha256=record.sha256
            )
        except Exception as err:  # a tokenizer choking on odd text must not stop the run
            reason = f"could not be chunked ({type(err).__name__}: {err})"
            return _FileResult(record.path, node, warnings=tuple(warnings), chunk_error=reason)
        chunks = [replace(c, origin=sections[c.section].origin) for c in chunks]
        pages = max((s.page or 0 for s in sections), default=0)
        todo = sorted(
            (i for i, c in enumerate(chunks) if reuse_key(c.heading, c.text) not in known),
            key=lambda i: -chunks[i].tokens,
        )
        batch = self._settings.embed_batch_size
        parts = [
            self._embedder.embed_documents(
                [chunks[i].text for i in part], titles=[chunks[i].heading for i in part]
            )
            for part in (todo[start : start + batch] for start in range(0, len(todo), batch))
        ]
        vectors = np.concatenate(parts) if parts else None
        return _FileResult(record.path, node, tuple(chunks), pages, tuple(warnings), tuple(todo), vectors)


class _RemoteVectors:
    """The driver's stand-in for the workers' embedder: its identity, and the vectors they sent.

    The ``Writer`` asks it for the vectors of a window's new chunk texts, as it would ask a real
    embedder; they were computed on the workers and are handed over here as each file arrives.
    """

    def __init__(self, name: str, dim: int, max_tokens: int, titles: bool = False) -> None:
        self.name, self.dim, self.max_tokens, self.titles = name, dim, max_tokens, titles
        self._vectors: dict[str, np.ndarray] = {}

    def put(self, chunks: Sequence[Chunk], embedded: Sequence[int], vectors: np.ndarray | None) -> None:
        for row, i in enumerate(embedded):
            self._vectors[reuse_key(chunks[i].heading, chunks[i].text)] = vectors[row]

    def clear(self) -> None:
        self._vectors.clear()

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> np.ndarray:
        keys = [reuse_key(h, t) for h, t in zip(titles or [""] * len(texts), texts, strict=True)]
        missing = [t for k, t in zip(keys, texts, strict=True) if k not in self._vectors]
        if missing:  # a bug, not bad input: say which text
            raise ModelError(f"no vector came back from the Ray workers for {missing[0][:60]!r}")
        return np.stack([self._vectors[k] for k in keys]) if keys else np.empty((0, self.dim))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise ModelError("the Ray workers' embedder embeds documents only")

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        raise ModelError("the Ray workers' embedder chunks on the workers")


class _RayWriter(Writer):
    """The local ``Writer``, with each file's chunks and vectors taken from a Ray worker.

    Only ``_add`` differs: the twin checks, the skip reasons and their catalog records, vector
    reuse, windows, transactions and progress are ``Writer``'s.
    """

    def __init__(self, *args: Any, stream: _Stream, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stream = stream

    def run(self, records: Sequence[FileRecord]) -> Any:
        self._stream.start(self._root, records, self._known_texts, self._is_twin)
        return super().run(records)

    def _known_texts(self, record: FileRecord) -> frozenset[str]:
        return frozenset(self._reusable(record))

    def _is_twin(self, record: FileRecord) -> bool:
        """Whether a file need not be sent: an indexed file has its content (checked again later)."""
        return self._index.same_content(record.sha256, self._root, record.path) is not None

    def _add(self, record: FileRecord) -> None:
        pending = next((p.record.path for p in self._pending if p.record.sha256 == record.sha256), None)
        twin = pending or self._twin(record)
        if twin:  # same content would give the same chunk ids: index it once
            self._index.remove_file(self._root, record.path)
            return self._done(record, Skipped(record.path, f"same content as {twin}, indexed once"))
        got = self._stream.take(record)
        if isinstance(got, str):  # the worker died on it
            return self._done(record, Skipped(record.path, got))
        path = Path(self._root, record.path)
        if got.unreadable:
            if not path.is_file():
                if self._index.remove_file(self._root, record.path):
                    self._removed.append(record.path)
                return self._done(record, Skipped(record.path, "the file disappeared during the run"))
            if not got.visible:
                reason = (f"not found on Ray node {got.node[:12]}: every node must see the folder at "
                          "the same path (a shared filesystem)")  # fmt: skip
                return self._done(record, Skipped(record.path, reason))
            return self._done(record, Skipped(record.path, got.unreadable))
        if got.content_error:
            return self._skip_content(record, got.content_error)
        self._warnings += [Skipped(record.path, w) for w in got.warnings]
        if got.chunk_error:
            return self._done(record, Skipped(record.path, got.chunk_error))
        if not got.chunks:
            return self._skip_content(record, "no text to index (a scanned document without a text layer?)")
        self._embedder.put(got.chunks, got.embedded, got.vectors)
        self._pending.append(_Pending(record, got.chunks, got.pages, self._reusable(record)))

    def _flush(self) -> None:
        super()._flush()
        self._embedder.clear()  # the window is written: its vectors are no longer needed


class _Stream:
    """Files out to the workers and back in plan order, with a bounded number out at once."""

    def __init__(self, ray: Any, actors: list[Any], in_flight: int) -> None:
        self._ray, self._actors, self._in_flight = ray, actors, in_flight
        self._queue: collections.deque[FileRecord] = collections.deque()
        self._out: dict[str, tuple[Any, int, FileRecord]] = {}  # path -> (ref, actor, record)
        self._retried: set[str] = set()
        self.files_by_node: dict[str, int] = {}

    def start(
        self,
        root: str,
        records: Sequence[FileRecord],
        known: Callable[[FileRecord], frozenset[str]],
        is_twin: Callable[[FileRecord], bool],
    ) -> None:
        self._root, self._known, self._is_twin = root, known, is_twin
        self._queue = collections.deque(records)
        self._seen: set[str] = set()  # content already sent in this run: its twins wait
        self._fill()

    def take(self, record: FileRecord) -> _FileResult | str:
        """The worker's result for ``record`` (sent now if it was held back), or why it has none."""
        if record.path not in self._out:
            if record in self._queue:
                self._queue.remove(record)
            self._submit(record)
        while True:
            ref, _, _ = self._out[record.path]
            ready, _ = self._ray.wait([ref], timeout=_POLL_SECONDS)
            if ready:
                break
            self._fill()
        del self._out[record.path]
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as err:
            if record.path in self._retried:
                return f"a Ray worker died reading it, twice ({_first_line(err)})"
            self._retried.add(record.path)
            self._submit(record)
            return self.take(record)
        except self._ray.exceptions.RayTaskError as err:
            raise ModelError(f"a Ray worker failed on {record.path}: {_first_line(err)}") from None
        self.files_by_node[result.node] = self.files_by_node.get(result.node, 0) + 1
        self._fill()
        return result

    def _fill(self) -> None:
        """Send queued files while fewer than ``in_flight`` are out and a worker has room."""
        while self._queue and len(self._out) < self._in_flight:
            busy = self._busy()
            actor = min(range(len(self._actors)), key=lambda a: busy[a])
            if busy[actor] >= _QUEUED_PER_WORKER:
                return
            record = self._queue.popleft()
            if record.sha256 in self._seen or self._is_twin(record):
                continue  # likely skipped as a twin; sent at its turn if not
            self._submit(record, actor)

    def _busy(self) -> list[int]:
        """Calls each actor has not finished (``ray.wait`` without waiting)."""
        refs = [ref for ref, _, _ in self._out.values()]
        done = set(self._ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        busy = [0] * len(self._actors)
        for ref, actor, _ in self._out.values():
            busy[actor] += ref not in done
        return busy

    def _submit(self, record: FileRecord, actor: int | None = None) -> None:
        if actor is None:
            busy = self._busy()
            actor = min(range(len(self._actors)), key=lambda a: busy[a])
        self._seen.add(record.sha256)
        ref = self._actors[actor].read.remote(self._root, record, self._known(record))
        self._out[record.path] = (ref, actor, record)
