"""The document registry: one sqlite database (WAL mode) that every worker and every process on
the host shares. It records what each document is (its `DocumentInfo`), the uploaded file it came
from (`upload`, NULL for corpus documents) and any write in progress (`pending`).

Every write is a `BEGIN IMMEDIATE` transaction: sqlite's own lock orders writers across threads and
processes, so there is no read-modify-write of a shared file under a per-process lock. A write
goes in two steps (see `docstore.py`): (1) the intent, with a token, is committed as `pending`;
(2) under the write lock the chunks are written to the vector store and the row is switched to
the new version in the same transaction. A crash between the two leaves a `pending` row that the
next start finishes from the kept file (`reconcile`), so no acknowledged write is lost and no
half-written version is ever listed.
"""

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag_chatbot.library import DocumentInfo

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
"""
BUSY_TIMEOUT_MS = 60_000  # a writer waits this long for another's store write to finish


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
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            # WAL: readers never wait for the writer; FULL: a commit survives a power cut too.
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One connection per call: sqlite connections are cheap and not shared across threads.
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous=FULL")
        return con

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: the registry's (and the store's) one writer at a time."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    # -- reads --------------------------------------------------------------------------------

    def row(self, doc_id: str, con: sqlite3.Connection | None = None) -> Row | None:
        sql = "SELECT id, info, upload, pending FROM documents WHERE id = ?"
        if con is not None:
            r = con.execute(sql, (doc_id,)).fetchone()
        else:
            with _closing(self._connect()) as c:
                r = c.execute(sql, (doc_id,)).fetchone()
        return _row(r) if r else None

    def get(self, doc_id: str) -> DocumentInfo | None:
        row = self.row(doc_id)
        return row.info if row else None

    def page(self, limit: int, offset: int) -> tuple[int, list[DocumentInfo]]:
        """(how many documents are served, `limit` of them newest first from `offset`)."""
        with _closing(self._connect()) as con:
            con.execute("BEGIN")  # one snapshot for the count and the page
            total = con.execute("SELECT count(*) FROM documents WHERE info IS NOT NULL").fetchone()
            rows = con.execute("SELECT info FROM documents WHERE info IS NOT NULL ORDER BY "
                               "ingested_at DESC, id LIMIT ? OFFSET ?", (limit, offset)).fetchall()  # fmt: skip
            con.execute("COMMIT")
        return total[0], [DocumentInfo(**json.loads(r[0])) for r in rows]

    def pending(self) -> list[Row]:
        with _closing(self._connect()) as con:
            rows = con.execute("SELECT id, info, upload, pending FROM documents "
                               "WHERE pending IS NOT NULL").fetchall()  # fmt: skip
        return [_row(r) for r in rows]

    def uploads(self) -> list[Row]:
        with _closing(self._connect()) as con:
            rows = con.execute("SELECT id, info, upload, pending FROM documents "
                               "WHERE upload IS NOT NULL").fetchall()  # fmt: skip
        return [_row(r) for r in rows]

    def blob_in_use(self, con: sqlite3.Connection, sha256: str, *, besides: str) -> bool:
        for upload, pending in con.execute(
            "SELECT upload, pending FROM documents WHERE id != ?", (besides,)
        ):
            for item in (json.loads(upload) if upload else None,
                         (json.loads(pending) or {}).get("upload") if pending else None):  # fmt: skip
                if item and item["sha256"] == sha256:
                    return True
        return False

    # -- writes (inside `write()`) -------------------------------------------------------------

    @staticmethod
    def set_pending(con: sqlite3.Connection, doc_id: str, pending: dict[str, Any]) -> str:
        token = uuid.uuid4().hex
        con.execute("INSERT INTO documents (id, pending) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                    "SET pending = excluded.pending", (doc_id, json.dumps({**pending, "token": token})))  # fmt: skip
        return token

    @staticmethod
    def finish_put(con: sqlite3.Connection, doc_id: str, info: DocumentInfo,
                   upload: dict[str, Any] | None) -> None:  # fmt: skip
        con.execute("UPDATE documents SET info = ?, upload = ?, pending = NULL, ingested_at = ? "
                    "WHERE id = ?", (json.dumps(asdict(info)), json.dumps(upload) if upload else None,
                                     info.ingested_at, doc_id))  # fmt: skip

    @staticmethod
    def drop(con: sqlite3.Connection, doc_id: str) -> None:
        con.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    @staticmethod
    def clear_pending(con: sqlite3.Connection, doc_id: str) -> None:
        """Abandons a write that cannot be finished; a row that never had a version goes."""
        con.execute("DELETE FROM documents WHERE id = ? AND info IS NULL", (doc_id,))
        con.execute("UPDATE documents SET pending = NULL WHERE id = ?", (doc_id,))

    # -- the corpus and the one-time migration from JSON ---------------------------------------

    def import_manifest(self, manifest: dict[str, dict], uploads: dict[str, dict],
                        *, replace_corpus: bool) -> None:  # fmt: skip
        """Corpus documents from a `manifest.json` (what `dvc repro` writes beside an index);
        ids in `uploads` (the old `uploads.json`) are uploads. `replace_corpus`: the corpus rows
        are replaced (a freshly seeded index), and every upload is queued to be written again."""
        with self.write() as con:
            if replace_corpus:
                con.execute("DELETE FROM documents WHERE upload IS NULL AND pending IS NULL")
            for doc_id, d in manifest.items():
                info = DocumentInfo(**d)
                con.execute("INSERT INTO documents (id, info, upload, ingested_at) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (id) DO NOTHING", (doc_id, json.dumps(d),
                            json.dumps(uploads[doc_id]) if doc_id in uploads else None,
                            info.ingested_at))  # fmt: skip
            for doc_id in uploads.keys() - manifest.keys():  # kept but never indexed
                self.set_pending(con, doc_id, {"op": "put", "info": None,
                                               "upload": uploads[doc_id], "stale": 0})  # fmt: skip
            if replace_corpus:
                for row in [_row(r) for r in con.execute(
                        "SELECT id, info, upload, pending FROM documents WHERE upload IS NOT NULL")]:  # fmt: skip
                    stale = max(row.chunks_written(), manifest.get(row.id, {}).get("chunks", 0))
                    self.set_pending(con, row.id, {"op": "put", "info": None,
                                                   "upload": row.upload, "stale": stale})  # fmt: skip
            con.execute("INSERT OR REPLACE INTO meta VALUES ('imported', '1')")

    def imported(self) -> bool:
        with _closing(self._connect()) as con:
            return con.execute("SELECT 1 FROM meta WHERE key = 'imported'").fetchone() is not None


@contextmanager
def _closing(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield con
    finally:
        con.close()
