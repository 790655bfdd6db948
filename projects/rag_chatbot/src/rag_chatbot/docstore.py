"""The service's documents: chunks in the vector store, rows in the registry (registry.py), and
every uploaded file kept as it came, so the index can always be rebuilt: beside a sqlite registry
in `<uploads>/<sha256>`; in a Postgres registry, in its `files` table, so that every replica,
whatever its host, can read every file.

A write, in the order that loses nothing on a crash at any point:
1. parse, chunk and embed (no lock; the caller runs it off the event loop);
2. one transaction: conflict check, the file written (temporary name, fsync, rename), the row
   marked `pending` with a token. After this the upload can be finished from the kept file;
3. one transaction (the write lock): the chunks upserted, chunks of an older, longer version
   deleted, the row switched to the new version. Only then is the client answered.
A process killed between 2 and 3 leaves a pending row: the next start re-runs step 3 from the
kept file (`reconcile`). A delete is the same two steps with a `delete` intent. With replicas on
several hosts (Postgres), the next start of any replica finishes it: the file is in the database,
and the token makes a write finished twice (by its own process and a starting replica) land once.

The service index is the corpus index built by `dvc repro`, copied (`seed_index`), plus every
upload. `dvc repro` never touches it; delete it to pick up a rebuilt corpus and it is seeded
again and every kept upload written back. Where the files are kept: kept_files.py; seeding the
index and filling a new registry at start: docstore_setup.py.
"""

import asyncio
import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from rag_chatbot.document_chunks import DocumentInfo, Prepared, chunk_id
from rag_chatbot.extract import ExtractError
from rag_chatbot.kept_files import KeptFiles
from rag_chatbot.library import Library
from rag_chatbot.parsing import extract_isolated
from rag_chatbot.registry import Registry

log = logging.getLogger(__name__)


class DocumentExistsError(Exception):
    def __init__(self, info: DocumentInfo | None) -> None:
        super().__init__("exists")
        self.info = info


@dataclass(frozen=True)
class Limits:
    max_pages: int = 500
    max_chunks: int | None = 2000
    max_chars: int | None = 500_000
    parse_timeout_s: float = 20.0
    parse_memory_mb: int | None = 1024


class DocumentStore(KeptFiles):
    def __init__(
        self, library: Library, registry: Registry, uploads_dir: Path, limits: Limits = Limits()
    ) -> None:
        self.library, self.registry, self.limits = library, registry, limits
        self.store = library.store
        self.uploads_dir = Path(uploads_dir)
        # One store writer per process at a time (the registry orders processes): the others
        # wait on the event loop, not in a pool thread.
        self.write_lock = asyncio.Lock()

    # -- reads --------------------------------------------------------------------------------

    def get(self, doc_id: str) -> DocumentInfo | None:
        return self.registry.get(doc_id)

    def page(self, limit: int, offset: int) -> tuple[int, list[DocumentInfo]]:
        return self.registry.page(limit, offset)

    # -- writes -------------------------------------------------------------------------------

    def prepare(
        self,
        filename: str,
        data: bytes,
        *,
        doc_id: str,
        title: str | None,
        topic: str,
        media_type: str | None,
    ) -> Prepared:
        """Step 1 (CPU-bound, no lock; parsing in a child process). Raises `ExtractError`."""
        return self.library.prepare(
            filename,
            data,
            doc_id=doc_id,
            title=title,
            topic=topic,
            media_type=media_type,
            max_pages=self.limits.max_pages,
            max_chunks=self.limits.max_chunks,
            max_chars=self.limits.max_chars,
            parse_timeout_s=self.limits.parse_timeout_s,
            parse=partial(extract_isolated, memory_mb=self.limits.parse_memory_mb),
        )

    def put(
        self,
        new: Prepared,
        data: bytes,
        *,
        title: str | None,
        media_type: str | None,
        replace: bool,
    ) -> tuple[DocumentInfo, str]:
        """Steps 2 and 3 -> (the served info, created | replaced | unchanged). Raises
        `DocumentExistsError` when the id is taken (or being written) and `replace` is false."""
        info = new.info
        upload = {
            "file": info.file,
            "sha256": info.sha256,
            "title": title,
            "topic": info.topic,
            "media_type": media_type,
        }
        with self.registry.write() as tx:
            row = self.registry.row(info.id, tx)
            if row is not None:
                old = row.info
                if (
                    old
                    and not row.pending
                    and old.sha256 == info.sha256
                    and old.title == info.title
                    and old.topic == info.topic
                ):
                    return old, "unchanged"  # a retried upload is not a conflict
                if not replace:
                    raise DocumentExistsError(old)
            self._keep(tx, data, info.sha256)
            token = self.registry.set_pending(
                tx,
                info.id,
                {
                    "op": "put",
                    "info": asdict(info),
                    "upload": upload,
                    "stale": row.chunks_written() if row else 0,
                },
            )
        self._apply_put(info.id, token, new)
        # What is stored: a replica starting meanwhile may have finished this write itself,
        # with its own `ingested_at`; the client is told what the registry holds.
        stored = self.get(info.id) or info
        return stored, "replaced" if row is not None and row.info is not None else "created"

    def delete(self, doc_id: str) -> bool:
        with self.registry.write() as tx:
            row = self.registry.row(doc_id, tx)
            if row is None or row.info is None:
                return False
            token = self.registry.set_pending(
                tx, doc_id, {"op": "delete", "stale": row.chunks_written()}
            )
        self._apply_delete(doc_id, token)
        return True

    def reconcile(self) -> int:
        """Finishes every write a killed process left pending; returns how many."""
        done = 0
        for row in self.registry.pending():
            p = row.pending
            if p["op"] == "delete":
                done += self._apply_delete(row.id, p["token"])
                continue
            up = p["upload"]
            try:
                data = self.kept(up["sha256"])
                new = self.prepare(
                    up["file"],
                    data,
                    doc_id=row.id,
                    title=up.get("title"),
                    topic=up.get("topic") or "",
                    media_type=up.get("media_type"),
                )
            except ExtractError as exc:
                if exc.code == "parse_timeout":  # a busy start, maybe: the next one retries it
                    log.warning("pending write of %s left for the next start: %s", row.id, exc)
                else:
                    self._abandon(row.id, p["token"], exc)
                continue
            except OSError as exc:  # its file is gone: it can never be finished
                self._abandon(row.id, p["token"], exc)
                continue
            done += self._apply_put(row.id, p["token"], new)
        if done:
            log.info("finished %d interrupted writes", done)
        return done

    def _abandon(self, doc_id: str, token: str, why: Exception) -> None:
        """Drops a write that cannot be finished (its kept file stays, so a fix can retry it).
        Only that write: its own process, or a newer write, may be finishing the same id."""
        with self.registry.write() as tx:
            row = self.registry.row(doc_id, tx)
            if row is not None and row.pending and row.pending["token"] == token:
                log.warning("pending write of %s abandoned: %s", doc_id, why)
                self.registry.clear_pending(tx, doc_id)

    # -- step 3 ---------------------------------------------------------------------------------

    def _apply_put(self, doc_id: str, token: str, new: Prepared) -> bool:
        with self.registry.write() as tx:
            row = self.registry.row(doc_id, tx)
            if row is None or not row.pending or row.pending["token"] != token:
                return False  # a later write (or a reconcile) took over; it writes the newest
            self.store.upsert(new.docs, new.vectors)
            n, stale = new.info.chunks, row.pending["stale"]
            if stale > n:
                self.store.delete([chunk_id(doc_id, i) for i in range(n, stale)])
            self.registry.finish_put(tx, doc_id, new.info, row.pending["upload"])
            if row.upload and row.upload["sha256"] != new.info.sha256:
                self._forget(tx, row.upload["sha256"], doc_id)
        return True

    def _apply_delete(self, doc_id: str, token: str) -> bool:
        with self.registry.write() as tx:
            row = self.registry.row(doc_id, tx)
            if row is None or not row.pending or row.pending["token"] != token:
                return False
            self.store.delete([chunk_id(doc_id, i) for i in range(row.pending["stale"])])
            self.registry.drop(tx, doc_id)
            if row.upload:
                self._forget(tx, row.upload["sha256"], doc_id)
        return True
