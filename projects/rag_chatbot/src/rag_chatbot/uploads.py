"""The service's index = the corpus index built by `dvc repro`, copied, plus every upload.

Uploaded files are kept as they came (`uploads/<sha256>` and `uploads/uploads.json`), so the
service index can always be rebuilt: when it is missing (first start, or deleted to pick up a
rebuilt corpus) it is seeded from the corpus index and every upload is ingested again. `dvc
repro` never touches it, so rebuilding the corpus never loses an upload.
"""

import json
import logging
import os
import shutil
from pathlib import Path

from rag_chatbot.extract import ExtractError
from rag_chatbot.library import Library

log = logging.getLogger(__name__)


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.registry = self.folder / "uploads.json"

    def entries(self) -> dict[str, dict]:
        return json.loads(self.registry.read_text()) if self.registry.exists() else {}

    def _write(self, entries: dict[str, dict]) -> None:
        tmp = self.registry.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=1))
        tmp.replace(self.registry)

    def save(
        self, doc_id: str, filename: str, data: bytes, sha256: str, **fields: str | None
    ) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        blob = self.folder / sha256
        if not blob.exists():
            tmp = blob.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(blob)
        self._write({**self.entries(), doc_id: {"file": filename, "sha256": sha256, **fields}})

    def remove(self, doc_id: str) -> None:
        entries = self.entries()
        gone = entries.pop(doc_id, None)
        if gone is None:
            return
        self._write(entries)
        if all(e["sha256"] != gone["sha256"] for e in entries.values()):
            (self.folder / gone["sha256"]).unlink(missing_ok=True)

    def restore(self, library: Library) -> int:
        """Ingest every kept upload into `library` again; returns how many."""
        restored = 0
        for doc_id, e in self.entries().items():
            data = (self.folder / e["sha256"]).read_bytes()
            try:
                library.add_file(e["file"], data, doc_id=doc_id, title=e.get("title"),
                                 topic=e.get("topic") or "", media_type=e.get("media_type"))  # fmt: skip
            except ExtractError as exc:  # kept, so a fixed parser can read it next time
                log.warning("upload %s could not be restored: %s", doc_id, exc)
                continue
            restored += 1
        return restored


def seed_index(index_dir: Path, corpus_index: Path | None) -> bool:
    """Copies the corpus index to `index_dir` if that does not exist yet; True if it did."""
    if index_dir.exists() or corpus_index is None or not corpus_index.exists():
        return False
    tmp = index_dir.with_name(f"{index_dir.name}.seeding-{os.getpid()}")
    shutil.copytree(corpus_index, tmp)
    try:
        tmp.rename(index_dir)  # a half-copied index is never seen under the real name
    except OSError:  # another worker seeded it first
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    log.info("seeded %s from %s", index_dir, corpus_index)
    return True
