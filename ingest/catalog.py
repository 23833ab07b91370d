"""The catalog: one SQLite file that is the single truth about what an index holds.

Tables: ``meta`` (embedder, dim, format and a ``version`` bumped by every write), ``files``
(one row per file, identified by its folder ``root`` and its ``path`` relative to it),
``chunks`` (text and location; ``rowid`` is the id in the vector store), ``vectors`` (each
chunk's float32 vector, so the FAISS file can be rebuilt without re-embedding) and ``chunks_fts``
(an FTS5 index over chunk text for BM25; accents folded so "configuracion" finds "configuración").

Every change to a file (add, replace, remove, move) is one transaction that also bumps
``version``. This module does not embed, search vectors or write the FAISS file.

It is every SQL statement docqa runs on an index (``ingest.store`` calls these functions and runs
none of its own), which is why it is longer than 300 lines: the schema and the queries that
depend on it are read and changed together.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from ingest.records import Chunk

_SENTENCE_START = re.compile(r"(?<=[.!?:;])\s+")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,          -- absolute folder the file was found in
    path TEXT NOT NULL,          -- POSIX path relative to root
    source TEXT NOT NULL UNIQUE, -- what chunks cite: path, prefixed by the root's name if taken
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    status TEXT NOT NULL,        -- 'indexed', or 'skipped' (its content cannot be indexed)
    reason TEXT NOT NULL DEFAULT '',
    pages INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL,
    UNIQUE (root, path)
);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha256);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,  -- the vector store id; never reused
    chunk_id TEXT NOT NULL UNIQUE,
    file_id INTEGER NOT NULL REFERENCES files (id),
    text TEXT NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    lang TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    position INTEGER NOT NULL,
    section INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    origin TEXT NOT NULL DEFAULT 'text'  -- 'text' (the file's own text) or 'ocr' (a scanned page)
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE INDEX IF NOT EXISTS chunks_position ON chunks (file_id, position);  -- lead_ins: the chunk before
CREATE TABLE IF NOT EXISTS vectors (rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    text, content='chunks', content_rowid='rowid', tokenize="unicode61 remove_diacritics 2"
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    DELETE FROM vectors WHERE rowid = old.rowid;
END;
"""

_CHUNK_COLUMNS = (
    'c.chunk_id, f.source, c.text, c.start, c."end", c.section, c.position, c.page, c.heading, '
    "c.lang, c.tokens, c.origin"
)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """An indexed file. ``pages`` is its highest page number (0 for formats without pages);
    ``source`` is the name its chunks cite (``Chunk.source``)."""

    root: str
    path: str
    sha256: str
    size: int
    mtime: float
    chunks: int
    pages: int
    source: str


@dataclass(frozen=True, slots=True)
class FileState:
    """What the catalog knows of one file, for the incremental checks."""

    sha256: str
    size: int
    mtime: float
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileUpdate:
    """One file's new content: its chunks with their vectors (row i of ``vectors`` is chunk i),
    or ``skip_reason`` when its content cannot be indexed (kept so reruns do not parse it again)."""

    root: str
    path: str
    sha256: str
    size: int
    mtime: float
    chunks: tuple[Chunk, ...] = ()
    vectors: np.ndarray | None = None
    pages: int = 0
    skip_reason: str = ""


def connect(path: str, *, create: bool) -> sqlite3.Connection:
    """Open a catalog (creating its tables if ``create``); raises ``sqlite3.DatabaseError``.

    WAL lets the query side read while ingestion writes; ``synchronous = NORMAL`` keeps every
    committed transaction across a crash of the process (a power cut may lose the last ones, never
    consistency).
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 30000")
        has_tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
        if not has_tables and create:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
        elif not has_tables:
            raise sqlite3.DatabaseError("the catalog has no docqa tables")
        else:
            _migrate(conn, writable=create)
            if create:  # an index made before chunks_position: lead_ins scanned a file's chunks
                conn.execute("CREATE INDEX IF NOT EXISTS chunks_position ON chunks (file_id, position)")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, *, writable: bool) -> None:
    """Add the columns an index made by an older docqa lacks, with the value its rows mean.

    ``chunks.origin`` (added with OCR): every older chunk was read from a text layer, 'text'.
    Adding a column with a default rewrites no row. An index that cannot be written (a read-only
    folder) is read through a temporary view that adds the column, so it stays readable.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(chunks)")}
    if "origin" in columns:
        return
    try:
        conn.execute("ALTER TABLE chunks ADD COLUMN origin TEXT NOT NULL DEFAULT 'text'")
    except sqlite3.OperationalError:
        if writable:
            raise
        conn.execute("CREATE TEMP VIEW chunks AS SELECT *, 'text' AS origin FROM main.chunks")


def read_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    return int(row[0]) if row else 0


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta"))


def write_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    with _transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: the queries inside it see one version of the catalog."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def indexed_files(conn: sqlite3.Connection) -> list[FileInfo]:
    """The indexed files, by root then path (files skipped for their content are left out)."""
    sql = (
        "SELECT root, path, sha256, size, mtime, chunks, pages, source FROM files "
        "WHERE status = 'indexed' ORDER BY root, path"
    )
    return [FileInfo(*row) for row in conn.execute(sql)]


def file_location(conn: sqlite3.Connection, source: str) -> tuple[str, str] | None:
    """(root, path) of the indexed file whose chunks cite ``source``."""
    row = conn.execute(
        "SELECT root, path FROM files WHERE source = ? AND status = 'indexed'", (source,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def chunk_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM chunks").fetchone()[0]


def vector_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM vectors").fetchone()[0]


def search_lexical(
    conn: sqlite3.Connection, match: str, k: int, sources: Collection[str] | None = None
) -> list[tuple[str, float]]:
    """BM25 over chunk text for an FTS5 ``match`` expression: (chunk_id, score > 0), best first.

    FTS5's own ranking: the reference ``ingest.lexical.LexicalIndex`` (what the store searches) is
    compared with in tests and bench/bench_retrieval.py.

    With ``sources``, only chunks of the files citing those names are ranked (before the limit).
    """
    if sources is None:
        sql = (
            "SELECT c.chunk_id, -f.score FROM (SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts "
            "WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?) f "
            "JOIN chunks c ON c.rowid = f.rowid ORDER BY f.score"
        )
        return [(cid, float(score)) for cid, score in conn.execute(sql, (match, k))]
    wanted = list(dict.fromkeys(sources))
    if not wanted:
        return []
    marks = ",".join("?" * len(wanted))
    sql = (
        "SELECT c.chunk_id, -bm25(chunks_fts) AS score FROM chunks_fts "
        "JOIN chunks c ON c.rowid = chunks_fts.rowid JOIN files f ON f.id = c.file_id "
        f"WHERE chunks_fts MATCH ? AND f.source IN ({marks}) ORDER BY bm25(chunks_fts) LIMIT ?"
    )
    return [(cid, float(score)) for cid, score in conn.execute(sql, (match, *wanted, k))]


def source_rowids(conn: sqlite3.Connection, sources: Collection[str]) -> list[int]:
    """The vector-store ids of the chunks of the indexed files citing these names."""
    found: list[int] = []
    for part in _parts(list(dict.fromkeys(sources))):
        marks = ",".join("?" * len(part))
        sql = (
            "SELECT c.rowid FROM chunks c JOIN files f ON f.id = c.file_id "
            f"WHERE f.source IN ({marks}) AND f.status = 'indexed'"
        )
        found += [r[0] for r in conn.execute(sql, part)]
    return found


def sample_vectors(conn: sqlite3.Connection, count: int, want: int, at_least: int) -> np.ndarray:
    """About ``want`` of the ``count`` stored vectors, at rowids spread evenly over the catalog, as
    (n, dim) rows; the first ``want`` ones when the rowids are too sparse to give ``at_least``."""
    low, high = conn.execute("SELECT min(rowid), max(rowid) FROM vectors").fetchone()
    targets = np.unique(np.linspace(low, high, min(high - low + 1, want * (high - low + 1) // count + 1)))
    rows: list[bytes] = []
    for part in np.array_split(targets, max(1, len(targets) // 500)):
        marks = ",".join("?" * len(part))
        sql = f"SELECT vector FROM vectors WHERE rowid IN ({marks})"
        rows += [r[0] for r in conn.execute(sql, [int(x) for x in part])]
    if len(rows) < at_least:  # rowids too sparse: take the first ones instead
        rows = [r[0] for r in conn.execute("SELECT vector FROM vectors LIMIT ?", (want,))]
    return np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), -1)


def sample_texts(conn: sqlite3.Connection, want: int) -> list[str]:
    """The texts of about ``want`` chunks at rowids spread evenly over the catalog (each target
    rowid's chunk or the next one), by rowid without repeats."""
    low, high = conn.execute("SELECT min(rowid), max(rowid) FROM chunks").fetchone()
    if low is None or want <= 0:
        return []
    seen: dict[int, str] = {}
    for target in np.unique(np.linspace(low, high, min(want, high - low + 1)).astype(np.int64)):
        row = conn.execute(
            "SELECT rowid, text FROM chunks WHERE rowid >= ? ORDER BY rowid LIMIT 1", (int(target),)
        ).fetchone()
        if row is not None:
            seen[row[0]] = row[1]
    return [seen[r] for r in sorted(seen)]


def file_states(conn: sqlite3.Connection, root: str) -> dict[str, FileState]:
    rows = conn.execute("SELECT path, sha256, size, mtime, status, reason FROM files WHERE root = ?", (root,))
    return {row[0]: FileState(*row[1:]) for row in rows}


def same_content(conn: sqlite3.Connection, sha256: str, root: str, path: str) -> tuple[str, str] | None:
    """(root, path) of another indexed file with this content, if any (ids would collide)."""
    row = conn.execute(
        "SELECT root, path FROM files "
        "WHERE sha256 = ? AND status = 'indexed' AND NOT (root = ? AND path = ?)",
        (sha256, root, path),
    ).fetchone()
    return (row[0], row[1]) if row else None


def apply(conn: sqlite3.Connection, updates: Sequence[FileUpdate]) -> tuple[list[int], list[int]]:
    """Replace the files' rows and chunks in one transaction.

    Returns:
        (rowids removed, rowids added), for the vector store; added ids follow the order of the
        updates' chunks.
    """
    removed: list[int] = []
    added: list[int] = []
    with _transaction(conn):
        for update in updates:
            removed += _delete_chunks(conn, update.root, update.path)
            added += _write_file(conn, update)
    return removed, added


def remove(conn: sqlite3.Connection, root: str, path: str) -> list[int] | None:
    """Delete one file and its chunks; None if the catalog did not have it."""
    row = conn.execute("SELECT id FROM files WHERE root = ? AND path = ?", (root, path)).fetchone()
    if row is None:  # checked before the transaction: a no-op must not bump the version
        return None
    with _transaction(conn):
        rowids = _delete_chunks(conn, root, path)
        conn.execute("DELETE FROM files WHERE id = ?", (row[0],))
    return rowids


def move(conn: sqlite3.Connection, root: str, old: str, new: str, size: int, mtime: float) -> None:
    """Rename a file in place (same content): its chunks and vectors stay as they are."""
    with _transaction(conn):
        source = _free_source(conn, root, new)
        conn.execute(
            "UPDATE files SET path = ?, source = ?, size = ?, mtime = ? WHERE root = ? AND path = ?",
            (new, source, size, mtime, root, old),
        )


def iter_vectors(conn: sqlite3.Connection, batch: int = 4096) -> Iterator[tuple[list[int], np.ndarray]]:
    """All (rowids, vectors) in batches; run inside a read transaction for a consistent snapshot."""
    cursor = conn.execute("SELECT rowid, vector FROM vectors ORDER BY rowid")
    while rows := cursor.fetchmany(batch):
        ids = [r[0] for r in rows]
        yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(ids), -1)


def iter_texts(conn: sqlite3.Connection) -> Iterator[tuple[int, str, str]]:
    """All (rowid, heading path, text) of the chunks, by rowid (the lexical index is built from
    them); run inside a read transaction for a consistent snapshot."""
    yield from conn.execute("SELECT rowid, heading, text FROM chunks ORDER BY rowid")


def chunk_ids(conn: sqlite3.Connection, rowids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in _parts(list(rowids)):
        marks = ",".join("?" * len(part))
        found.update(conn.execute(f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({marks})", part))
    return found


def get_chunks(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Chunk]:
    found: dict[str, Chunk] = {}
    for part in _parts(list(ids)):
        marks = ",".join("?" * len(part))
        sql = (
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id "
            f"WHERE c.chunk_id IN ({marks})"
        )
        for row in conn.execute(sql, part):
            found[row[0]] = Chunk(*row)
    return found


def file_vectors(conn: sqlite3.Connection, root: str, path: str) -> list[tuple[str, str, bytes]]:
    """(heading, text, stored vector as raw float32 bytes) of each chunk of the file's indexed version."""
    sql = (
        "SELECT c.heading, c.text, v.vector FROM files f JOIN chunks c ON c.file_id = f.id "
        "JOIN vectors v ON v.rowid = c.rowid WHERE f.root = ? AND f.path = ?"
    )
    return conn.execute(sql, (root, path)).fetchall()


def lead_ins(conn: sqlite3.Connection, ids: Sequence[str], max_chars: int) -> dict[str, str]:
    """The start of each chunk's first line when the chunk begins mid-line, from the chunk before.

    Chunks overlap and start on a sentence, often in the middle of a line: "PV2 range is -3.3 to
    3.3." loses the "PV1 range is -5 to 5." just before it. The lead-in is the text before the
    chunk on its line, taken from the previous chunk of the same section: from the line's start,
    or from the previous chunk's own start (a sentence) when the line began earlier; at most
    ``max_chars``, whole sentences. Chunks that start a line get none.
    """
    found: dict[str, str] = {}
    for part in _parts(list(ids)):
        marks = ",".join("?" * len(part))
        sql = (
            'SELECT c.chunk_id, p."end" - c.start, p.text FROM chunks c JOIN chunks p '
            "ON p.file_id = c.file_id AND p.position = c.position - 1 AND p.section = c.section "
            f"WHERE c.chunk_id IN ({marks}) AND c.start > p.start"
        )
        for chunk_id, back, previous in conn.execute(sql, part):
            if not 0 <= back < len(previous):  # a gap between the chunks: the line start is not here
                continue
            # Measured back from the previous chunk's end: a table piece starts with its repeated
            # header, which is not in the section's text (``Chunk.table_header``).
            head = previous[: len(previous) - back]
            line = head[head.rfind("\n") + 1 :]
            if not line.strip():
                continue
            if len(line) > max_chars:  # keep the whole sentences that fit
                cut = [m.end() for m in _SENTENCE_START.finditer(line) if len(line) - m.end() <= max_chars]
                if not cut:
                    continue
                line = line[cut[0] :]
            found[chunk_id] = line
    return found


def _write_file(conn: sqlite3.Connection, u: FileUpdate) -> list[int]:
    status = "skipped" if u.skip_reason else "indexed"
    old = conn.execute(
        "SELECT id, source FROM files WHERE root = ? AND path = ?", (u.root, u.path)
    ).fetchone()
    values = (u.sha256, u.size, u.mtime, status, u.skip_reason, u.pages, len(u.chunks), time.time())
    if old:
        file_id = old[0]
        conn.execute(
            "UPDATE files SET sha256=?, size=?, mtime=?, status=?, reason=?, pages=?, chunks=?, indexed_at=? "
            "WHERE id = ?",
            (*values, file_id),
        )
    else:
        source = _free_source(conn, u.root, u.path)
        file_id = conn.execute(
            "INSERT INTO files (root, path, source, sha256, size, mtime, status, reason, pages, chunks, "
            "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (u.root, u.path, source, *values),
        ).lastrowid
    rowids = []
    for c in u.chunks:
        rowids.append(
            conn.execute(
                'INSERT INTO chunks (chunk_id, file_id, text, page, heading, lang, start, "end", position, '
                "section, tokens, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.id,
                    file_id,
                    c.text,
                    c.page,
                    c.heading,
                    c.lang,
                    c.start,
                    c.end,
                    c.position,
                    c.section,
                    c.tokens,
                    c.origin,
                ),
            ).lastrowid
        )
    if rowids:
        vectors = np.ascontiguousarray(u.vectors, dtype=np.float32)
        conn.executemany(
            "INSERT INTO vectors (rowid, vector) VALUES (?, ?)",
            ((rowid, vectors[i].tobytes()) for i, rowid in enumerate(rowids)),
        )
    return rowids


def _delete_chunks(conn: sqlite3.Connection, root: str, path: str) -> list[int]:
    sql = "SELECT c.rowid FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.root = ? AND f.path = ?"
    rowids = [r[0] for r in conn.execute(sql, (root, path))]
    conn.executemany("DELETE FROM chunks WHERE rowid = ?", ((r,) for r in rowids))
    return rowids


def _free_source(conn: sqlite3.Connection, root: str, path: str) -> str:
    """``path``, or ``"<root name>/path"`` when another folder already has a file at ``path``.

    For example "manual.pdf" from /data/uploads while /data/corpus/manual.pdf is indexed
    becomes "uploads/manual.pdf".
    """
    name = PurePath(root).name or "root"
    candidates = [path, f"{name}/{path}", *(f"{name}-{n}/{path}" for n in range(2, 1000))]
    for source in candidates:
        row = conn.execute("SELECT root, path FROM files WHERE source = ?", (source,)).fetchone()
        if row is None or tuple(row) == (root, path):
            return source
    raise ValueError(f"no free source name for {root}/{path}")


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` that also bumps the catalog version; rollback on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(
            "INSERT INTO meta VALUES ('version', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def __exit__(self, kind: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if kind else "COMMIT")


def _parts(items: list, size: int = 500) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
