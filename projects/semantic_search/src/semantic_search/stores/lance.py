"""LanceDB on local disk: the embedded default. Versioned, so a write either lands whole or not at
all, and every uvicorn worker can open the same folder (reads check for newer versions)."""

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from semantic_search.documents import Document, Filters, Hit
from semantic_search.stores.memory import MemoryMirror, bm25_text, exact_dense

log = logging.getLogger(__name__)

TEXT_COLUMNS = ["id", "text", "title", "topic", "source", "date", "metadata"]
# A LanceDB connection keeps state for every table version it has seen and never frees it: about
# 13 KB a version (3,000 one-row upserts: +38 MB, in writers and in readers that follow them;
# cache limits and compaction did not help, a new connection did). So a store reconnects once its
# table has moved this many versions past the connection's first, and the writer compacts then.
RECONNECT_VERSIONS = 200
KEEP_VERSIONS_FOR = dt.timedelta(minutes=10)  # older versions are pruned at compaction


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def where_clause(filters: Filters | None) -> str | None:
    """Filters as a LanceDB (DataFusion SQL) predicate; values are quoted, never raw."""
    if filters is None or filters.is_empty():
        return None

    def one_of(field: str, values) -> str:
        return f"{field} IN ({', '.join(_quote(v) for v in values)})"

    return " AND ".join(filters.conditions(one_of))


class LanceStore:
    backend = "lancedb"

    def __init__(
        self,
        path: str | Path,
        dim: int,
        *,
        table: str = "documents",
        consistency_s: float = 0.0,
        refine_factor: int = 4,
        memory_rows: int = 100_000,
        bm25_fields: dict[str, int] | None = None,
    ) -> None:
        """Tables up to `memory_rows` rows are also held in memory (see stores/memory.py): exact
        dense search and no second query to fetch documents. Larger ones use the ANN index,
        whose candidates are re-scored exactly on `refine_factor` times k rows. `bm25_fields`
        weights title or metadata fields into the in-memory BM25 index (`bm25_documents`)."""
        import lancedb

        self.dim = dim
        self.refine_factor = refine_factor
        self.path, self.table_name, self.consistency_s = str(path), table, consistency_s
        self.db = lancedb.connect(
            self.path, read_consistency_interval=dt.timedelta(seconds=consistency_s)
        )
        schema = pa.schema(
            [
                ("id", pa.string()),
                ("text", pa.string()),
                ("title", pa.string()),
                ("topic", pa.string()),
                ("source", pa.string()),
                ("date", pa.int32()),
                ("metadata", pa.string()),
                ("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        self.table = _open_or_create(self.db, table, schema)
        stored_dim = self.table.schema.field("vector").type.list_size
        if stored_dim != dim:
            raise ValueError(f"index at {path} holds {stored_dim}-d vectors, encoder gives {dim}")
        self._mirror = MemoryMirror(self.table, memory_rows, bm25_fields) if memory_rows else None
        self._first_version = self.table.version

    def _reconnect_if_stale(self, *, compact: bool = False) -> None:
        """A new connection once the table is RECONNECT_VERSIONS past this one's first version;
        a writer (`compact`) first folds the small fragments one-row writes leave and prunes
        versions older than KEEP_VERSIONS_FOR (a reader may still be on a recent one)."""
        import lancedb

        if self.table.version - self._first_version < RECONNECT_VERSIONS:
            return
        if compact:
            # After the write's own commit: a compaction that fails (another worker compacting
            # at once, a full disk) must not turn a write that landed into an error the client
            # retries (a retried delete would find nothing: 404). The next write tries again,
            # before this store reconnects.
            try:
                self.table.optimize(cleanup_older_than=KEEP_VERSIONS_FOR)
            except Exception:
                log.warning("compaction of %s failed; the write stands", self.path, exc_info=True)
                return
        db = lancedb.connect(
            self.path, read_consistency_interval=dt.timedelta(seconds=self.consistency_s)
        )
        table = db.open_table(self.table_name)
        # Readers in flight keep the old objects; new calls take these.
        self.db, self.table, self._first_version = db, table, table.version
        if self._mirror:
            self._mirror.table = table

    def _snapshot(self):
        self._reconnect_if_stale()
        return self._mirror.current() if self._mirror else None

    # writes ------------------------------------------------------------------------------
    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> int:
        if not documents:
            return 0
        rows = pa.table(
            {
                "id": [d.id for d in documents],
                "text": [d.text for d in documents],
                "title": [d.title for d in documents],
                "topic": [d.topic for d in documents],
                "source": [d.source for d in documents],
                "date": pa.array([d.date_key() for d in documents], pa.int32()),
                "metadata": [json.dumps(d.metadata) for d in documents],
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.asarray(vectors, np.float32).ravel()), self.dim
                ),
            },
            schema=self.table.schema,
        )
        # One merge = one new table version: all of the batch or none of it.
        (
            self.table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(rows)
        )
        self._reconnect_if_stale(compact=True)
        return len(documents)

    def delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        # The count comes from the delete's own commit: rows-before minus rows-after would count
        # another worker's concurrent write too (and turn a real delete into a 404).
        result = self.table.delete(f"id IN ({', '.join(_quote(i) for i in ids)})")
        self._reconnect_if_stale(compact=True)
        return int(result.num_deleted_rows)

    def optimize(self) -> None:
        """(Re)builds the BM25 index and folds new rows into the vector index."""
        from lancedb.index import FTS

        names = {i.name for i in self.table.list_indices()}
        if "text_idx" not in names:
            self.table.create_index("text", config=FTS(with_position=False))
        self.table.optimize()

    def build_vector_index(self, config) -> None:
        """An approximate index (e.g. `lancedb.index.HnswSq(distance_type="cosine")`)."""
        self.table.create_index("vector", config=config, replace=True)

    # reads -------------------------------------------------------------------------------
    def count(self) -> int:
        return self.table.count_rows()

    def get(self, ids: Sequence[str]) -> list[Document]:
        if not ids:
            return []
        if snapshot := self._snapshot():
            return [snapshot.document(snapshot.position[i]) for i in ids if i in snapshot.position]
        query = self.table.search().where(f"id IN ({', '.join(_quote(i) for i in ids)})")
        rows = {r["id"]: r for r in query.select(TEXT_COLUMNS).limit(len(ids)).to_list()}
        return [_document(rows[i]) for i in ids if i in rows]

    def dense(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        with_vectors: bool = False,
    ) -> list[Hit]:
        if snapshot := self._snapshot():
            return exact_dense(snapshot, vector, k, filters, with_vectors=with_vectors)
        columns = [*TEXT_COLUMNS, "_distance"] + (["vector"] if with_vectors else [])
        query = self.table.search(np.asarray(vector, np.float32)).distance_type("cosine").limit(k)
        if self.refine_factor:
            query = query.refine_factor(self.refine_factor)  # exact re-scoring of ANN candidates
        where = where_clause(filters)
        if where:
            query = query.where(where, prefilter=True)
        return [
            Hit(
                _document(row),
                1.0 - float(row["_distance"]),
                np.asarray(row["vector"], np.float32) if with_vectors else None,
            )
            for row in query.select(columns).to_list()
        ]

    def text(
        self, query: str, k: int, filters: Filters | None = None, *, with_vectors: bool = False
    ) -> list[Hit]:
        if snapshot := self._snapshot():
            if not snapshot.ids:  # an empty index: bm25s cannot index zero documents
                return []
            index = self._mirror.bm25(snapshot)
            return bm25_text(snapshot, index, query, k, filters, with_vectors=with_vectors)
        search = self.table.search(query, query_type="fts", fts_columns="text").limit(k)
        where = where_clause(filters)
        if where:
            search = search.where(where, prefilter=True)
        columns = [*TEXT_COLUMNS, "_score"] + (["vector"] if with_vectors else [])
        return [
            Hit(
                _document(row),
                float(row["_score"]),
                np.asarray(row["vector"], np.float32) if with_vectors else None,
            )
            for row in search.select(columns).to_list()
        ]

    def topics(self) -> dict[str, int]:
        column = self.table.search().select(["topic"]).limit(None).to_arrow()["topic"]
        counts = column.value_counts()
        return {str(c["values"]): int(c["counts"]) for c in counts.to_pylist()}


def _open_or_create(db, name: str, schema: pa.Schema, attempts: int = 5):
    """Opens the table, creating it (empty) if absent. Several workers starting at once on a new
    folder all try to create it: the first commit wins and the others open what it made."""
    for attempt in range(attempts):
        try:
            return db.open_table(name)
        except (FileNotFoundError, ValueError):  # no table yet (LanceDB raises ValueError)
            pass
        try:
            return db.create_table(name, schema=schema, exist_ok=True)
        except (OSError, ValueError, RuntimeError):  # lost the race to another creator
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _document(row: dict) -> Document:
    return Document(
        id=row["id"],
        text=row["text"],
        title=row["title"] or "",
        topic=row["topic"] or "",
        source=row["source"] or "",
        date=Document.date_from_key(row["date"]),
        metadata=json.loads(row["metadata"] or "{}"),
    )
