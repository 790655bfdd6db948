"""The document registry: one database that every worker (and, on Postgres, every replica)
shares. It records what each document is (its `DocumentInfo`), the uploaded file it came from
(`upload`, NULL for corpus documents) and any write in progress (`pending`). The database is a
sqlite file (WAL) on one host or Postgres for replicas on several hosts (`sqldb.py`); the SQL
and the write order are the same on both.

Every write is one transaction holding the database's one writer lock (sqlite's `BEGIN
IMMEDIATE`, Postgres's transaction advisory lock): it orders writers across threads, processes
and hosts, so there is no read-modify-write of a shared file under a per-process lock. A write
goes in two steps (see `docstore.py`): (1) the intent, with a token, is committed as `pending`;
(2) under the write lock the chunks are written to the vector store and the row is switched to
the new version in the same transaction. A crash between the two leaves a `pending` row that the
next start finishes from the kept file (`reconcile`), so no acknowledged write is lost and no
half-written version is ever listed. On Postgres the kept files are in the database too (table
`files`), so any replica can finish any replica's interrupted write.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag_chatbot.document_chunks import DocumentInfo
from rag_chatbot.sqldb import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    info TEXT,          -- the served version (DocumentInfo JSON); NULL until one is written
    upload TEXT,        -- its kept file {file, sha256, title, topic, media_type}; NULL: corpus
    pending TEXT,       -- a write in progress {op, token, info?, upload?, stale}; NULL: none
    ingested_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS documents_by_time ON documents (ingested_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (sha256 TEXT PRIMARY KEY, data {blob} NOT NULL);
"""


class Tx:
    """A connection in either database, with the registry's `?` SQL."""

    def __init__(self, con: Any, sql: Callable[[str], str]) -> None:
        self.con, self._sql = con, sql

    def execute(self, query: str, params: tuple = ()) -> Any:
        if not params:  # psycopg then accepts several statements in one call
            return self.con.execute(self._sql(query))
        return self.con.execute(self._sql(query), params)


@dataclass
class Row:
    id: str
    info: DocumentInfo | None
    upload: dict[str, Any] | None
    pending: dict[str, Any] | None

    def chunks_written(self) -> int:
        """Chunk ids this document may occupy in the store, whichever version wrote them."""
        counts = [self.info.chunks if self.info else 0]
        if self.pending:
            counts.append(self.pending.get("stale", 0))
            if self.pending.get("info"):
                counts.append(self.pending["info"]["chunks"])
        return max(counts)


def _row(r: tuple) -> Row:
    info = DocumentInfo(**json.loads(r[1])) if r[1] else None
    return Row(r[0], info, json.loads(r[2]) if r[2] else None, json.loads(r[3]) if r[3] else None)


class Registry:
    def __init__(self, location: str | Path) -> None:
        """`location`: a sqlite file path, or a `postgresql://` URL (it may hold a password:
        `str(registry)` never shows it)."""
        self.db = open_database(location)
        # Postgres: replicas share the files (table `files`); sqlite: they are in uploads_dir.
        self.keeps_files = self.db.shared_across_hosts
        self.db.setup()
        with self.write() as tx:  # under the writer lock: replicas starting at once do not race
            for statement in SCHEMA.replace("{blob}", self.db.blob).split(";\n"):  # not in comments
                if statement.strip():
                    tx.execute(statement)

    def __str__(self) -> str:
        return str(self.db)

    @contextmanager
    def _session(self) -> Iterator[Tx]:
        con = self.db.connect()
        try:
            yield Tx(con, self.db.sql)
        finally:
            con.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction: the registry's (and the store's) one writer at a time."""
        with self._session() as tx:
            tx.execute(self.db.begin_write)
            try:
                yield tx
            except BaseException:
                # the connection may be what failed; closing it rolls back all the same
                with suppress(Exception):
                    tx.execute("ROLLBACK")
                raise
            tx.execute("COMMIT")

    # -- reads --------------------------------------------------------------------------------

    def row(self, doc_id: str, tx: Tx | None = None) -> Row | None:
        sql = "SELECT id, info, upload, pending FROM documents WHERE id = ?"
        if tx is not None:
            r = tx.execute(sql, (doc_id,)).fetchone()
        else:
            with self._session() as t:
                r = t.execute(sql, (doc_id,)).fetchone()
        return _row(r) if r else None

    def get(self, doc_id: str) -> DocumentInfo | None:
        row = self.row(doc_id)
        return row.info if row else None

    def page(self, limit: int, offset: int) -> tuple[int, list[DocumentInfo]]:
        """(how many documents are served, `limit` of them newest first from `offset`)."""
        with self._session() as tx:
            tx.execute(self.db.begin_read)  # one snapshot for the count and the page
            total = tx.execute("SELECT count(*) FROM documents WHERE info IS NOT NULL").fetchone()
            rows = tx.execute(
                "SELECT info FROM documents WHERE info IS NOT NULL ORDER BY "
                "ingested_at DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            tx.execute("COMMIT")
        return total[0], [DocumentInfo(**json.loads(r[0])) for r in rows]

    def _rows(self, where: str) -> list[Row]:
        with self._session() as tx:
            rows = tx.execute(f"SELECT id, info, upload, pending FROM documents WHERE {where}")
            return [_row(r) for r in rows.fetchall()]

    def pending(self) -> list[Row]:
        return self._rows("pending IS NOT NULL")

    def uploads(self) -> list[Row]:
        return self._rows("upload IS NOT NULL")

    def blob_in_use(self, tx: Tx, sha256: str, *, besides: str) -> bool:
        for upload, pending in tx.execute(
            "SELECT upload, pending FROM documents WHERE id != ?", (besides,)
        ).fetchall():
            for item in (
                json.loads(upload) if upload else None,
                (json.loads(pending) or {}).get("upload") if pending else None,
            ):
                if item and item["sha256"] == sha256:
                    return True
        return False

    # -- the kept files, when they live here (`keeps_files`: Postgres) -------------------------

    @staticmethod
    def keep_file(tx: Tx, sha256: str, data: bytes) -> None:
        tx.execute(
            "INSERT INTO files (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
            (sha256, data),
        )

    def read_file(self, sha256: str) -> bytes:
        with self._session() as tx:
            r = tx.execute("SELECT data FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        if r is None:
            raise FileNotFoundError(f"no kept file {sha256}")
        return bytes(r[0])

    @staticmethod
    def drop_file(tx: Tx, sha256: str) -> None:
        tx.execute("DELETE FROM files WHERE sha256 = ?", (sha256,))

    # -- writes (inside `write()`) -------------------------------------------------------------

    @staticmethod
    def set_pending(tx: Tx, doc_id: str, pending: dict[str, Any]) -> str:
        token = uuid.uuid4().hex
        tx.execute(
            "INSERT INTO documents (id, pending) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
            "SET pending = excluded.pending",
            (doc_id, json.dumps({**pending, "token": token})),
        )
        return token

    @staticmethod
    def finish_put(tx: Tx, doc_id: str, info: DocumentInfo, upload: dict[str, Any] | None) -> None:
        tx.execute(
            "UPDATE documents SET info = ?, upload = ?, pending = NULL, ingested_at = ? "
            "WHERE id = ?",
            (
                json.dumps(asdict(info)),
                json.dumps(upload) if upload else None,
                info.ingested_at,
                doc_id,
            ),
        )

    @staticmethod
    def drop(tx: Tx, doc_id: str) -> None:
        tx.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    @staticmethod
    def clear_pending(tx: Tx, doc_id: str) -> None:
        """Abandons a write that cannot be finished; a row that never had a version goes."""
        tx.execute("DELETE FROM documents WHERE id = ? AND info IS NULL", (doc_id,))
        tx.execute("UPDATE documents SET pending = NULL WHERE id = ?", (doc_id,))

    # -- the corpus and the one-time migration from JSON ---------------------------------------

    def import_manifest(
        self,
        manifest: dict[str, dict],
        uploads: dict[str, dict],
        *,
        replace_corpus: bool,
        files: dict[str, bytes] | None = None,
    ) -> None:
        """Corpus documents from a `manifest.json` (what `dvc repro` writes beside an index);
        ids in `uploads` (the old `uploads.json`) are uploads, their bytes in `files` when the
        registry keeps them. `replace_corpus`: the corpus rows are replaced (a freshly seeded
        index), and every upload is queued to be written again."""
        with self.write() as tx:
            if replace_corpus:
                tx.execute("DELETE FROM documents WHERE upload IS NULL AND pending IS NULL")
            for sha256, data in (files or {}).items():
                self.keep_file(tx, sha256, data)
            for doc_id, d in manifest.items():
                info = DocumentInfo(**d)
                tx.execute(
                    "INSERT INTO documents (id, info, upload, ingested_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (
                        doc_id,
                        json.dumps(d),
                        json.dumps(uploads[doc_id]) if doc_id in uploads else None,
                        info.ingested_at,
                    ),
                )
            for doc_id in uploads.keys() - manifest.keys():  # kept but never indexed
                self.set_pending(
                    tx, doc_id, {"op": "put", "info": None, "upload": uploads[doc_id], "stale": 0}
                )
            if replace_corpus:
                for row in [
                    _row(r)
                    for r in tx.execute(
                        "SELECT id, info, upload, pending FROM documents WHERE upload IS NOT NULL"
                    ).fetchall()
                ]:
                    stale = max(row.chunks_written(), manifest.get(row.id, {}).get("chunks", 0))
                    self.set_pending(
                        tx,
                        row.id,
                        {"op": "put", "info": None, "upload": row.upload, "stale": stale},
                    )
            tx.execute("INSERT INTO meta VALUES ('imported', '1') ON CONFLICT (key) DO NOTHING")

    def imported(self) -> bool:
        with self._session() as tx:
            return tx.execute("SELECT 1 FROM meta WHERE key = 'imported'").fetchone() is not None
