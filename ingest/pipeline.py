"""Ingestion: a folder (or some files) -> the index folder, incrementally and crash-safely.

``ingest_folder`` scans a folder, then for each file: unchanged (same size and mtime, or same
hash) -> nothing is parsed or embedded; renamed (a new path with the hash of a vanished one) ->
moved in the catalog; new or changed -> loaded, chunked, embedded and its chunks replaced in one
transaction; gone -> removed (``remove_missing``). Files are identified by (root, relative path),
so ingesting another folder (an uploads folder) never touches the first folder's files.

Memory stays bounded: files are handled one at a time and their chunks embedded in a window of
8 batches (length-sorted across files, so batches carry little padding), whatever the folder's size.
Bad input is skipped with its reason, never stops the run; the catalog is committed after every
window and the FAISS file every minute and at the end (``ingest.store`` repairs a crash between).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ingest.embed import Embedder, uses_titles
from ingest.errors import NothingToIndex
from ingest.load import LOADER_VERSION
from ingest.plan import plan_files
from ingest.records import FileRecord, IngestReport, Skipped
from ingest.scan import read_ignore, scan_files, scan_folder
from ingest.settings import Settings
from ingest.store import Index
from ingest.stores import open_store
from ingest.writer import Progress, Writer

__all__ = ["Progress", "ingest_folder", "ingest_paths", "remove_document"]


def ingest_folder(
    folder: Path,
    index_dir: Path,
    embedder: Embedder,
    settings: Settings,
    *,
    progress: Callable[[Progress], None] | None = None,
    remove_missing: bool = True,
    exclude: Sequence[str] = (),
    make_writer: Callable[..., Writer] = Writer,
) -> IngestReport:
    """Bring the index up to date with a folder.

    Args:
        folder: the documents; files are known by their path relative to it.
        index_dir: the index folder (created if missing).
        embedder: must be the one the index was built with.
        settings: chunk sizes, size limit, batch size.
        progress: called with a ``Progress`` after the scan and after each embedding batch.
        remove_missing: remove from the index the files of this folder that are gone.
        exclude: patterns of files and folders to leave out (``ingest.scan.is_ignored``), added
            to those of the folder's ``.docqaignore``; files already indexed that match are
            removed like files that are gone.
        make_writer: builds the run's ``Writer`` (same arguments); ``ingest.ray_ingest`` passes
            one whose files are read and embedded on Ray workers.

    Raises:
        NothingToIndex: the folder is missing or holds no file docqa can read (index unchanged).
        EmbedderMismatch, IndexCorrupt, IndexBusy.
    """
    started = time.perf_counter()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise NothingToIndex(f"{folder} is not a folder; give the folder that holds your documents")
    root = folder.resolve()
    with _open_for_writing(settings, index_dir, embedder) as index:
        index.begin_write()  # a second writer fails now, not after the scan
        states = index.file_states(str(root))
        found = list(
            scan_folder(
                root,
                _max_bytes(settings),
                known=_known(states),
                exclude=[Path(index_dir).expanduser().absolute()],
                ignore=[*read_ignore(root), *exclude],
            )
        )
        records = [f for f in found if isinstance(f, FileRecord)]
        if not records:
            raise NothingToIndex(_nothing_message(folder, [f for f in found if isinstance(f, Skipped)]))
        reuse = _same_titles(index, root, embedder)
        reread = _stale_reading(index, root, states, settings, embedder)
        report = _run(
            index, root, found, states, embedder, settings, progress, remove_missing, reread, make_writer,
            reuse=reuse,
        )  # fmt: skip
        if reread:  # recorded only now that every file was read again (a crash before: redone)
            index.set_meta(_loader_key(root), _reading(settings, embedder))
            index.commit()
            kept = "unchanged text kept its vectors" if reuse else "every chunk embedded again, titled"
            note = Skipped(".", "docqa reads documents differently since this folder was indexed: every file "
                           f"was read again ({kept})")  # fmt: skip
            report = dataclasses.replace(report, warnings=(note, *report.warnings))
    return _timed(report, started)


def check_folder(folder: Path, settings: Settings, exclude: Sequence[str] = ()) -> None:
    """Raise NothingToIndex, as ``ingest_folder`` would, if ``folder`` holds nothing to index.

    Walks only until the first file docqa can read, so callers can check before loading a model.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise NothingToIndex(f"{folder} is not a folder; give the folder that holds your documents")
    root = folder.resolve()
    skipped: list[Skipped] = []
    for found in scan_folder(root, _max_bytes(settings), ignore=[*read_ignore(root), *exclude]):
        if isinstance(found, FileRecord):
            return
        skipped.append(found)
    raise NothingToIndex(_nothing_message(folder, skipped))


def ingest_paths(
    paths: Iterable[Path],
    root: Path,
    index_dir: Path,
    embedder: Embedder,
    settings: Settings,
    progress: Callable[[Progress], None] | None = None,
) -> IngestReport:
    """Add or update some files under ``root`` (the app's uploads); removes nothing.

    Args:
        paths: files, absolute or relative to ``root``.
        root: the folder they are known by (their paths are relative to it).
    """
    started = time.perf_counter()
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NothingToIndex(f"{root} is not a folder; save the files in a folder first")
    root = root.resolve()
    with _open_for_writing(settings, index_dir, embedder) as index:
        index.begin_write()
        states = index.file_states(str(root))
        reuse = _same_titles(index, root, embedder)
        _stale_reading(index, root, states, settings, embedder)
        found = list(scan_files(root, list(paths), _max_bytes(settings), known=_known(states)))
        report = _run(
            index, root, found, states, embedder, settings, progress, remove_missing=False, reuse=reuse
        )
    return _timed(report, started)


def _loader_key(root: Path) -> str:
    return f"loader_version:{root}"


_TITLES = "-titles"


def _reading(settings: Settings, embedder: Embedder | None = None) -> str:
    """How files are read and embedded: the loaders' version, whether tables are read as tables,
    and whether the embedder is given each chunk's heading as its title (``ingest.embed``).

    >>> _reading(Settings(tables="off")).endswith("tables-off")
    True
    """
    reading = str(LOADER_VERSION) if settings.tables == "on" else f"{LOADER_VERSION}-tables-off"
    return reading + (_TITLES if uses_titles(embedder) else "")


def _same_titles(index: Index, root: Path, embedder: Embedder) -> bool:
    """Whether ``root``'s vectors were made as ``embedder`` makes them now, with or without
    titles (an index from before titles has none): else none of them may be kept."""
    recorded = index.meta(_loader_key(root))
    return recorded is None or recorded.endswith(_TITLES) == uses_titles(embedder)


def _stale_reading(index: Index, root: Path, states: dict, settings: Settings, embedder: Embedder) -> bool:
    """Whether the files indexed from ``root`` were read (or embedded) otherwise than these
    settings and this embedder would.

    A root with nothing indexed yet is marked current at once (its files will all be read now;
    recorded before the run, as it bumps the catalog version the run's commit stamps).
    """
    if index.meta(_loader_key(root)) == _reading(settings, embedder):
        return False
    if not states:
        index.set_meta(_loader_key(root), _reading(settings, embedder))
        return False
    return True


def remove_document(index_dir: Path, path: str | Path, settings: Settings | None = None) -> bool:
    """Remove one document from the index.

    Args:
        path: the file's path (absolute, or relative to the current folder), or the name its
            chunks cite (``Chunk.source``), or its path relative to its ingested folder.
        settings: the store to remove it from (``ingest.stores.open_store``); None: the local one.

    Returns:
        False if no indexed document matches.
    """
    with open_store(settings or Settings(), index_dir) as index:
        files = index.files()
        wanted = {Path(path).expanduser().absolute(), Path(path).expanduser().resolve()}
        text = Path(path).as_posix()
        matches = [f for f in files if Path(f.root, f.path) in wanted] or [
            f for f in files if f.source == text
        ]
        matches = matches or [f for f in files if f.path == text]
        if len(matches) != 1:
            return False
        index.remove_file(matches[0].root, matches[0].path)
        index.commit()
        return True


def _open_for_writing(settings: Settings, index_dir: Path, embedder: Embedder) -> Index:
    """The index ``embedder`` writes to, created if missing; an IVF index it trains has its
    lists per query calibrated on the embedder's own queries (``ingest.store.open_index``)."""
    return open_store(
        settings,
        index_dir,
        embedder_name=embedder.name,
        create=True,
        dim=embedder.dim,
        encode_queries=embedder.embed_queries,
    )


def _run(
    index: Index,
    root: Path,
    found: Sequence[FileRecord | Skipped],
    states: dict,
    embedder: Embedder,
    settings: Settings,
    progress: Callable[[Progress], None] | None,
    remove_missing: bool,
    reread: bool = False,
    make_writer: Callable[..., Writer] = Writer,
    *,
    reuse: bool = True,
) -> IngestReport:
    records = [f for f in found if isinstance(f, FileRecord)]
    plan = plan_files(records, states, remove_missing=remove_missing, reread=reread)
    for record in plan.touched:
        index.move_file(str(root), record.path, record.path, record.size, record.mtime)
    for old, record in plan.moved:
        index.move_file(str(root), old, record.path, record.size, record.mtime)
    # removed files are reported only if they were indexed (not skipped for their content)
    removed = tuple(p for p in plan.gone if index.remove_file(str(root), p) and states[p].status == "indexed")
    writer = make_writer(index, str(root), embedder, settings, progress, previous=set(states), reuse=reuse)
    result = writer.run(plan.todo)
    index.commit()
    return IngestReport(
        added=result.added + tuple(r.path for _, r in plan.moved),
        updated=result.updated,
        unchanged=plan.unchanged,
        removed=removed + result.removed + tuple(old for old, _ in plan.moved),
        skipped=tuple(f for f in found if isinstance(f, Skipped)) + plan.skipped + result.skipped,
        warnings=result.warnings + _calibration_warning(index),
        chunks_added=result.chunks_added,
        chunks_reused=result.chunks_reused,
    )


def _calibration_warning(index: Index) -> tuple[Skipped, ...]:
    """A warning when ``commit`` trained IVF lists but the embedder failed on the calibration
    queries: the index is complete, its searches probe the default share of lists."""
    error = getattr(index, "calibration_error", None)  # Milvus stores have no IVF of ours
    if not error:
        return ()
    return (
        Skipped(
            ".",
            f"the vector index could not be calibrated ({error}): searches probe the default number "
            "of lists, which may miss some near neighbours, until an ingestion that changes the "
            "index calibrates it",
        ),
    )


def _known(states: dict) -> Callable[[str, int, float], str | None]:
    """The scanner's shortcut: a file with the size and mtime on record keeps its recorded hash."""

    def known(path: str, size: int, mtime: float) -> str | None:
        state = states.get(path)
        return state.sha256 if state is not None and (state.size, state.mtime) == (size, mtime) else None

    return known


def _max_bytes(settings: Settings) -> int:
    return int(settings.max_file_mb * 1024 * 1024)


def _nothing_message(folder: Path, skipped: list[Skipped]) -> str:
    from ingest.load import SUPPORTED_SUFFIXES

    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    message = f"no file docqa can index in {folder} (it reads {kinds}); the index was not changed"
    if skipped:
        examples = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        message += f". {len(skipped)} skipped, e.g. {examples}"
    return message


def _timed(report: IngestReport, started: float) -> IngestReport:
    from dataclasses import replace

    return replace(report, seconds=round(time.perf_counter() - started, 3))
