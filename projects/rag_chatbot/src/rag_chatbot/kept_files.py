"""Every uploaded file kept as it came, by its sha256, so the index can always be rebuilt: in the
registry's `files` table when it keeps files (Postgres: every replica, whatever its host, reads
every file), else beside the sqlite registry in `<uploads>/<sha256>`, written durably (temporary
name, fsync, rename)."""

import os
import uuid
from pathlib import Path

from rag_chatbot.registry import Registry


class KeptFiles:
    """The kept files of a `DocumentStore`, which sets `registry` and `uploads_dir`; a write
    keeps and forgets them inside its registry transaction."""

    registry: Registry
    uploads_dir: Path

    def kept(self, sha256: str) -> bytes:
        """A kept upload's bytes. Raises `OSError` when it is not there."""
        if self.registry.keeps_files:
            return self.registry.read_file(sha256)
        return (self.uploads_dir / sha256).read_bytes()

    def _keep(self, tx, data: bytes, sha256: str) -> None:
        """Inside the write transaction, so a concurrent delete cannot remove it in between."""
        if self.registry.keeps_files:
            self.registry.keep_file(tx, sha256, data)
            return
        blob = self.uploads_dir / sha256
        if blob.exists():
            return
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.uploads_dir / f".{sha256}.{uuid.uuid4().hex}.part"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(blob)
        _fsync_dir(self.uploads_dir)

    def _forget(self, tx, sha256: str, doc_id: str) -> None:
        if self.registry.blob_in_use(tx, sha256, besides=doc_id):
            return
        if self.registry.keeps_files:
            self.registry.drop_file(tx, sha256)
        else:
            (self.uploads_dir / sha256).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
