"""Scoped questions: a ``Scope`` (documents, folders, languages) -> the files a search may rank.

``scope_sources`` resolves a scope's documents and folders against the index's files into the
names their chunks cite, which is what ``Store.search_dense`` and ``Store.search_lexical`` take as
``sources`` (both filter exactly). Languages belong to passages, not files: ``rag.retrieve`` keeps
only the passages in them while searching. A document, folder or language that matches nothing is
an ``EmptyScope`` error naming what would match, never a silently empty answer. This module does
not search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath, PurePosixPath

from ingest.catalog import FileInfo
from ingest.errors import EmptyScope
from ingest.lang import LANGUAGES
from ingest.records import Scope

_EXAMPLES = 5  # names shown in an error message


def scope_sources(scope: Scope, files: Sequence[FileInfo]) -> frozenset[str]:
    """The sources of the files in ``scope``: every file when it names no document or folder.

    A document matches a file by the name its chunks cite, its path in the ingested folder (or
    with that folder's name in front), its path on disk, or its file name alone; a folder matches
    the files below it by any of those paths.

    >>> files = [FileInfo("/m", p, "", 0, 0.0, 1, 1, p) for p in ("en/a.pdf", "es/a.pdf", "b.md")]
    >>> sorted(scope_sources(Scope(documents=["a.pdf"]), files))
    ['en/a.pdf', 'es/a.pdf']
    >>> sorted(scope_sources(Scope(documents=["b.md"], folders=["es/"]), files))
    ['b.md', 'es/a.pdf']

    Raises:
        EmptyScope: the index has no file, a document or folder matches none of its files, or a
            language is not one docqa detects.
    """
    if not files:
        raise EmptyScope(
            "the index has no documents to scope the question to; run 'docqa ingest FOLDER' first"
        )
    unknown = [lang for lang in scope.languages if lang not in LANGUAGES]
    if unknown:
        raise EmptyScope(
            f"no passage can be in language {unknown[0]!r}: docqa detects {', '.join(LANGUAGES)}; "
            "pick one of those codes"
        )
    if not (scope.documents or scope.folders):
        return frozenset(f.source for f in files)
    chosen: set[str] = set()
    for name in scope.documents:
        found = {f.source for f in files if _is_document(_posix(name), f)}
        if not found:
            raise EmptyScope(
                f"no indexed document is named {name!r}; use one of: {_examples(f.source for f in files)}"
            )
        chosen |= found
    for folder in scope.folders:
        found = {f.source for f in files if _is_under(_posix(folder), f)}
        if not found:
            folders = _examples(str(PurePosixPath(f.source).parent) for f in files if "/" in f.source)
            raise EmptyScope(
                f"no indexed document lies under the folder {folder!r}; "
                f"folders with documents: {folders or 'none (every document is at the top)'}"
            )
        chosen |= found
    return frozenset(chosen)


def _is_document(name: str, file: FileInfo) -> bool:
    return name in _names(file) or name == PurePosixPath(file.path).name


def _is_under(folder: str, file: FileInfo) -> bool:
    prefix = folder.rstrip("/") + "/"
    return folder == "." or any(name.startswith(prefix) for name in _names(file))


def _posix(name: str) -> str:
    """A path as typed, in the catalog's spelling: "./en\\\\a.pdf" -> "en/a.pdf"; "~" expanded."""
    text = name.strip().replace("\\", "/")
    if text.startswith("~"):
        text = Path(text).expanduser().as_posix()
    while text.startswith("./"):
        text = text[2:]
    return text or "."


def _names(file: FileInfo) -> tuple[str, ...]:
    """Every spelling of a file's path that a scope may use."""
    return (
        file.source,
        file.path,
        f"{PurePath(file.root).name}/{file.path}",
        PurePath(file.root, file.path).as_posix(),
    )


def _examples(names: Iterable[str]) -> str:
    unique = sorted(set(names))
    more = f" (and {len(unique) - _EXAMPLES} more)" if len(unique) > _EXAMPLES else ""
    return ", ".join(unique[:_EXAMPLES]) + more
