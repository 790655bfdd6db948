"""The registry's two databases. `registry.py` writes one SQL for both (`?` placeholders,
`INSERT ... ON CONFLICT`); what differs is here: how a connection is opened, and how a write
transaction becomes the one writer.

- A sqlite file (the default): every worker and process on one host. `BEGIN IMMEDIATE` takes the
  database's write lock; WAL, so readers never wait for it. Its locks do not work over NFS.
- Postgres (`postgresql://...`): replicas on several hosts. `BEGIN` then
  `pg_advisory_xact_lock(LOCK_KEY)`: one writer at a time across every replica and worker,
  released by the transaction's COMMIT or ROLLBACK, or by the server when the connection ends, so
  a killed replica never leaves it held. Writes run at READ COMMITTED on purpose: each statement
  after the lock sees every write committed before the lock was granted (a REPEATABLE READ
  snapshot would be taken at the lock statement, before the wait, and miss them).

One connection per operation, as with sqlite: nothing is shared between threads or kept open
across a failure.
"""

import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BUSY_TIMEOUT_MS = 60_000  # a writer waits this long for another's store write to finish
# The longest pause inside a write: a replica that hangs there (or whose host vanishes, which TCP
# notices only after hours) loses its transaction and the lock after this long, instead of
# stopping every writer. Its upload then fails (never acknowledged) and stays pending, finished
# at the next start of any replica.
MAX_WRITE_S = 300
LOCK_KEY = 0x5241475245474953  # "RAGREGIS": the registry's advisory lock, one per database


def is_postgres_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class Sqlite:
    begin_write = "BEGIN IMMEDIATE"
    begin_read = "BEGIN"  # one snapshot until COMMIT
    blob = "BLOB"
    shared_across_hosts = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return f"sqlite:{self.path}"

    def setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self.connect()
        try:  # WAL: readers never wait for the writer (a database setting: once, outside BEGIN)
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut too
        return con

    @staticmethod
    def sql(query: str) -> str:
        return query


class Postgres:
    # SET LOCAL: the limits end with the transaction, so they hold behind a pooler too. One
    # round trip: no parameters, so psycopg sends the statements as one simple query.
    begin_write = (
        f"BEGIN; SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {MAX_WRITE_S * 1000}; "
        f"SELECT pg_advisory_xact_lock({LOCK_KEY})"
    )
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    blob = "BYTEA"
    shared_across_hosts = True

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise RuntimeError(
                "a postgresql:// registry needs psycopg: pip install 'rag-chatbot[postgres]'"
            ) from None
        self._psycopg, self._url = psycopg, url

    def __str__(self) -> str:
        return redact(self._url)

    def setup(self) -> None:
        pass

    def connect(self) -> Any:
        try:  # autocommit: transactions are registry.py's explicit BEGIN/COMMIT, as with sqlite
            return self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            # libpq quotes the parts of a URL it cannot parse, and the error ends up in logs and
            # /readyz: the same error with any password taken out, raised outside this block so
            # that it does not carry the first one as its context
            message = str(exc)
            for secret in _passwords(self._url):
                message = message.replace(secret, "***")
            error = type(exc)(message)
        raise error

    @staticmethod
    def sql(query: str) -> str:
        return query.replace("?", "%s")  # the registry's SQL has no other `?` and no `%`


def _passwords(url: str) -> list[str]:
    """Every form of the URL's passwords (in the user part or a `password=` parameter)."""
    parts = urlsplit(url)
    found = [parts.password or "", *re.findall(r"(?:^|&)password=([^&]*)", parts.query)]
    return [form for p in found if p for form in {p, unquote(p)}]


def redact(url: str) -> str:
    """The URL without its passwords, for logs and errors."""
    for secret in sorted(_passwords(url), key=len, reverse=True):
        url = url.replace(secret, "***")
    return url


def open_database(location: str | Path) -> Sqlite | Postgres:
    return Postgres(str(location)) if is_postgres_url(location) else Sqlite(location)
