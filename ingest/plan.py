"""Planning an ingest run: which scanned files are unchanged, renamed, to (re)index, or gone.

``plan_files`` compares what the scan found under one folder with what the catalog knows of it
and returns a ``Plan``; ``ingest.pipeline`` carries it out. Pure: it reads no file and touches no
index, so every case (a rename, a changed file, a file skipped before) is a one-line test.

>>> from ingest.catalog import FileState
>>> from ingest.records import FileRecord
>>> states = {"old.pdf": FileState("aa", 10, 1.0, "indexed", "")}
>>> plan = plan_files([FileRecord("new.pdf", "aa", 10, 2.0)], states, remove_missing=True)
>>> plan.moved[0][0], plan.todo, plan.gone
('old.pdf', (), ())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest.catalog import FileState
from ingest.records import FileRecord, Skipped


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the scanned files of one folder, by path relative to it."""

    unchanged: tuple[str, ...]
    touched: tuple[FileRecord, ...]  # same content, new size/mtime: record them, nothing else
    moved: tuple[tuple[str, FileRecord], ...]  # (old path, record) with the same content
    todo: tuple[FileRecord, ...]  # new or changed: parse and embed
    gone: tuple[str, ...]
    skipped: tuple[Skipped, ...]  # unchanged files whose content was skipped before


def plan_files(
    records: Sequence[FileRecord],
    states: Mapping[str, FileState],
    *,
    remove_missing: bool,
    reread: bool = False,
) -> Plan:
    """Sort the scanned files: unchanged, touched (same content, new mtime), moved, to (re)index.

    Args:
        records: the files the scan found.
        states: what the catalog knows of the folder's files, by relative path.
        remove_missing: files known but not found are ``gone`` (else they are left alone).
        reread: files with unchanged content are indexed again too (docqa's loaders changed).
    """
    present = {r.path for r in records}
    gone = [p for p in states if p not in present] if remove_missing else []
    gone_by_sha = {states[p].sha256: p for p in gone if states[p].status == "indexed"}
    unchanged, touched, moved, todo, skipped = [], [], [], [], []
    for r in records:
        state = states.get(r.path)
        if state is not None and state.sha256 == r.sha256 and not reread:
            if (state.size, state.mtime) != (r.size, r.mtime):
                touched.append(r)
            if state.status == "indexed":
                unchanged.append(r.path)
            else:
                skipped.append(Skipped(r.path, state.reason))
        elif state is None and r.sha256 in gone_by_sha:
            old = gone_by_sha.pop(r.sha256)
            gone.remove(old)
            moved.append((old, r))
        else:
            todo.append(r)
    return Plan(tuple(unchanged), tuple(touched), tuple(moved), tuple(todo), tuple(gone), tuple(skipped))
