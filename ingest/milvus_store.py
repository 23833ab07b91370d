"""``MilvusStore``: the index folder's catalog with its vectors searched in a Milvus collection.

What lives where: the SQLite catalog in the index folder stays the single truth, exactly as for the
local store (files with their sha, size, mtime and pages; chunks with their text, which lexical
search ranks; every chunk's vector). Milvus holds a copy of the vectors, one row per
chunk keyed by the catalog's chunk ``rowid`` (never reused), and answers dense searches in place of
``vectors.faiss``. Everything else, from the incremental bookkeeping of ingestion (unchanged files
skipped, a changed file's unchanged chunk texts keeping their vectors) to lexical search, is the
local ``Index``'s, inherited unchanged: both stores ingest, list and search lexically the same way.

Why lexical search stays in the catalog: Milvus Lite 3.2 has BM25 (a BM25 function on an analysed
VARCHAR field), but its analyzer only splits and lowercases (no accent folding: "configuracion"
does not find "configuración"), and it returns BM25 scores negated where a Milvus server returns
them positive (``tests/ingest/test_milvus_store.py`` checks both); the local lexical search folds
accents, and keeping it gives both stores the same lexical results, the ones the fusion weights
were tuned on.

Crash safety: a write commits the catalog first (one SQLite transaction, as for the local store),
then deletes the replaced rows from Milvus and upserts the new ones (``MilvusVectors`` is the
vector layer ``Index`` writes through). A crash in between leaves
Milvus missing rows or holding rows the catalog no longer has, never holding wrong vectors under a
live id: ids are never reused, and an id's vector never changes. Any such mismatch is repaired from
the catalog before it is served: on first use, whenever the catalog version changed behind this
process's back, and after a failed Milvus write, the Milvus ids are compared with the catalog's,
missing rows upserted from the catalog's vectors and extra ones deleted (the vectors are read only
when rows are missing: reopening an intact index reads ids, not vectors). The Milvus ids are read
before the catalog's, so a row another process has just added is in the catalog by then and is
never deleted as extra. Every dense hit is looked up in the catalog, so a row deleted there is never
returned; when one such stale row takes a place among the k best, the store repairs and searches
again. ``commit`` flushes Milvus, removes a ``vectors.faiss`` the local store left (it no longer
matches) and stamps the manifest (``vector_store`` "milvus"): switching ``store`` back to "local"
rebuilds ``vectors.faiss`` from the catalog, and switching to "milvus" fills Milvus from it.

Milvus Lite (a ``.db`` path; the default is ``milvus.db`` in the index folder) runs inside the
process, serving on 127.0.0.1, and lets one process open its file at a time: the app and a
``docqa ingest`` cannot use the same file together (``IndexBusy`` says so); a Milvus server lifts
that. The collection's index is FLAT (exact, inner product on normalised vectors = cosine), so a
search limited to some files (``id in [...]``) is exact.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest import catalog
from ingest.errors import IndexBusy, IndexUnavailable
from ingest.layout import MILVUS_LITE
from ingest.store import Index, open_index

__all__ = ["MilvusStore", "MilvusVectors", "milvus_uri", "open_milvus_store"]

_COLLECTION_KEY = "milvus_collection"  # catalog meta: this index's collection name
_BATCH = 2000  # rows per upsert (768-dim float32: 6 MB, well under gRPC's 64 MB)
_MAX_K = 16384  # Milvus's largest search limit


def milvus_uri(setting: str, index_dir: Path) -> str:
    """The URI the ``milvus_uri`` setting means: a Milvus Lite file in the index folder when empty.

    >>> milvus_uri("", Path("/data/index"))
    '/data/index/milvus.db'
    >>> milvus_uri("http://localhost:19530", Path("/data/index"))
    'http://localhost:19530'
    """
    if not setting:
        return str(Path(index_dir).expanduser().absolute() / MILVUS_LITE)
    if "://" in setting:
        return setting
    return str(Path(setting).expanduser().absolute())


def open_milvus_store(
    index_dir: Path,
    *,
    uri: str = "",
    collection: str = "docqa",
    embedder_name: str | None = None,
    create: bool = False,
    dim: int | None = None,
) -> MilvusStore:
    """Open an index folder whose vectors are searched in Milvus.

    Args:
        index_dir: the folder (its catalog is checked as ``ingest.store.open_index`` does).
        uri: the ``milvus_uri`` setting (empty: ``milvus.db`` in the index folder).
        collection: the collection name's prefix; the index's own name is recorded in the catalog.
        embedder_name, create, dim: as for ``open_index``.

    Raises:
        IndexNotFound, IndexCorrupt, EmbedderMismatch (the catalog), IndexBusy (a Milvus Lite file
        another process has open), IndexUnavailable (Milvus cannot be reached or used).
    """
    index = open_index(index_dir, embedder_name=embedder_name, create=create, dim=dim)
    try:
        target = milvus_uri(uri, index.path)
        client = _connect(target)
    except BaseException:
        index.close()
        raise
    name = index.meta(_COLLECTION_KEY)
    store = MilvusStore(index, client, name or f"{collection}_{secrets.token_hex(6)}", target)
    try:
        if name is None:  # a random suffix: a rebuilt index never meets an old index's rows
            store.set_meta(_COLLECTION_KEY, store.collection)
        with _milvus(target, "open the collection"):
            _ensure_collection(client, store.collection, store.dim)
    except BaseException:
        store.close()
        raise
    return store


class MilvusVectors:
    """The vector layer of a ``MilvusStore``: what ``ingest.vectors.FlatVectors`` does for the local
    store (add, remove, search by catalog rowid), on a Milvus collection."""

    def __init__(self, client: Any, collection: str, uri: str) -> None:
        self.client = client
        self.collection = collection
        self.uri = uri

    def params(self) -> dict[str, int | str]:
        """What the manifest records of it."""
        return {"vector_store": "milvus", "milvus_collection": self.collection}

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Upsert rows (an id's vector never changes, so writing one twice is harmless)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with _milvus(self.uri, "write to the collection"):
            for start in range(0, len(ids), _BATCH):
                rows = [
                    {"id": int(rowid), "vector": vectors[start + i].tolist()}
                    for i, rowid in enumerate(ids[start : start + _BATCH])
                ]
                self.client.upsert(self.collection, rows)

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        with _milvus(self.uri, "delete from the collection"):
            for start in range(0, len(ids), _BATCH):
                self.client.delete(self.collection, ids=ids[start : start + _BATCH])

    def search(
        self, query: np.ndarray, k: int, allowed: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best (rowid, inner product); ``allowed``: only these rowids, every one scored."""
        if allowed is not None and not len(allowed):
            return []
        limit = min(k, _MAX_K, k if allowed is None else len(allowed))
        if limit <= 0:
            return []
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        expr = "" if allowed is None else f"id in [{','.join(str(int(r)) for r in allowed)}]"
        with _milvus(self.uri, "search the collection"):
            found = self.client.search(
                self.collection,
                data=[vector],
                anns_field="vector",
                limit=limit,
                filter=expr,
                output_fields=["id"],
                search_params={"metric_type": "IP"},
            )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def ids(self) -> set[int]:
        """Every rowid the collection holds."""
        with _milvus(self.uri, "read the collection"):
            rows = self.client.query(self.collection, filter="id >= 0", output_fields=["id"])
        return {int(row["id"]) for row in rows}

    def count(self) -> int:
        with _milvus(self.uri, "count the collection"):
            rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def save(self, path: Path) -> None:
        """Flush the collection; remove ``path``, a FAISS file of the local store that no longer
        matches (so a switch back to the local store rebuilds it from the catalog)."""
        with _milvus(self.uri, "flush the collection"):
            self.client.flush(self.collection)
        Path(path).unlink(missing_ok=True)


class MilvusStore(Index):
    """An index folder whose dense search is a Milvus collection's; see the module docstring.

    It is an ``Index`` (the catalog, lexical search, files, the write lock, ingestion's bookkeeping
    and its writes are inherited) whose vector layer is ``MilvusVectors`` instead of FAISS, kept in
    step with the catalog by ``_rebuild``. Use ``open_milvus_store``.
    """

    def __init__(self, index: Index, client: Any, collection: str, uri: str) -> None:
        # takes the catalog's connection over (``index`` holds no lock yet and is not used again);
        # no ann_threshold: the local store's FAISS index kinds do not apply
        super().__init__(index.path, index._conn, index.embedder, index.dim, ann_threshold=sys.maxsize)
        self.collection = collection
        self.uri = uri
        self._milvus = MilvusVectors(client, collection, uri)
        self._vectors = self._milvus

    @property
    def manifest(self) -> dict[str, Any]:
        """manifest.json without its ``catalog_version`` stamp: the stamp vouches for a FAISS file,
        and Milvus is compared with the catalog itself (``_rebuild``) whenever the version moved."""
        return {k: v for k, v in super().manifest.items() if k != "catalog_version"}

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` chunks nearest to a normalised query vector: (chunk_id, cosine), best first.

        ``sources``: only the chunks of the files citing these names (a filter on their ids, every
        one of them scored); None: all chunks. A stale Milvus row among the hits (one the catalog
        no longer has) makes the store repair and search again, so the ``k`` best are returned.
        """
        if k <= 0:
            return []
        with self._lock:
            self._sync()
            allowed = None if sources is None else catalog.source_rowids(self._conn, sources)
            for _ in range(3):
                hits = self._milvus.search(query_vector, k, allowed)
                ids = catalog.chunk_ids(self._conn, [rowid for rowid, _ in hits])
                if len(ids) == len(hits):
                    break
                self._rebuild()
            return [(ids[rowid], score) for rowid, score in hits if rowid in ids]

    def close(self) -> None:
        with self._lock:
            try:
                self._milvus.client.close()
            finally:
                super().close()

    def __enter__(self) -> MilvusStore:
        return self

    def _rebuild(self, *, fit: bool = False) -> None:
        """Make Milvus's rows the catalog's: upsert the missing ones, delete the extra ones.

        Called by ``Index`` wherever the local store would rebuild its FAISS vectors from the
        catalog: on first use, and when the catalog version moved behind this process's back
        (another process wrote, or a Milvus write failed after the catalog's commit)."""
        held = self._milvus.ids()  # before the catalog's: see the module docstring
        missing_ids: list[int] = []
        missing: list[np.ndarray] = []
        with catalog.snapshot(self._conn):
            version = catalog.read_version(self._conn)
            live = set(catalog.chunk_ids(self._conn, sorted(held)))  # Milvus's rows the catalog has
            if len(live) < catalog.vector_count(self._conn):  # some are missing: read the vectors
                for rowids, vectors in catalog.iter_vectors(self._conn):
                    keep = [i for i, rowid in enumerate(rowids) if rowid not in held]
                    missing_ids += [rowids[i] for i in keep]
                    missing.append(vectors[keep])
        if missing_ids:
            self._milvus.add(missing_ids, np.concatenate(missing))
        self._milvus.remove(sorted(held - live))
        self._vectors, self._vectors_version = self._milvus, version


def _connect(uri: str) -> Any:
    """A ``MilvusClient`` on ``uri``; a clear error when it cannot be had."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise IndexUnavailable("store = 'milvus' needs pymilvus: pip install pymilvus milvus-lite") from None
    lite = "://" not in uri
    if lite:
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise IndexUnavailable(
                f"milvus_uri {uri} is a Milvus Lite file, which needs 'pip install milvus-lite' "
                "(or set milvus_uri to a Milvus server, or store = 'local')"
            ) from None
    try:
        return MilvusClient(uri=uri)
    except MilvusException as err:
        if lite and _locked_elsewhere(uri):
            raise IndexBusy(
                f"the Milvus Lite file {uri} is open in another process (Milvus Lite lets one process "
                "use it at a time): close the other docqa (the app, an ingest), or run a Milvus server "
                "and set milvus_uri to it"
            ) from None
        hint = "is its folder writable?" if lite else "is the server running and the URL right?"
        raise IndexUnavailable(f"cannot open Milvus at {uri} ({err.message}): {hint}") from None


def _locked_elsewhere(uri: str) -> bool:
    """Whether another process holds the Milvus Lite file's lock (an advisory ``flock``)."""
    try:
        import fcntl
    except ImportError:  # Windows: Milvus Lite locks another way; say nothing
        return False
    try:
        with open(Path(uri) / "LOCK", "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _ensure_collection(client: Any, name: str, dim: int) -> None:
    """Create the collection (id = catalog rowid, the vector, a FLAT inner-product index) if
    missing, check its vector size, and load it for searching."""
    from pymilvus import DataType

    if not client.has_collection(name):
        schema = client.create_schema(auto_id=False, description="docqa chunk vectors (id: catalog rowid)")
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        params = client.prepare_index_params()
        params.add_index("vector", index_type="FLAT", metric_type="IP")
        client.create_collection(name, schema=schema, consistency_level="Strong")
        client.create_index(name, params, sync=False)  # waiting: Milvus Lite logs an error
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    found = int(fields.get("vector", {}).get("params", {}).get("dim", -1))
    if found != dim:
        raise IndexUnavailable(
            f"Milvus collection {name} holds vectors of size {found}, the index's are {dim}: drop the "
            "collection (the catalog rebuilds it) or set milvus_collection to another prefix"
        )
    client.load_collection(name)


@contextmanager
def _milvus(uri: str, what: str) -> Iterator[None]:
    """Turn a Milvus error into ``IndexUnavailable`` saying what was kept."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as err:
        raise IndexUnavailable(
            f"could not {what} in Milvus at {uri} ({err.message}); the catalog in the index folder "
            "keeps what was indexed, and Milvus is repaired from it on the next run"
        ) from None
