"""What a starting service does before it opens its documents (docstore.py): its index seeded
from the corpus index built by `dvc repro` (copied once; `dvc repro` never touches the copy, so
deleting it picks up a rebuilt corpus, and every kept upload is written back), and a new registry
filled from the JSON files of earlier versions."""

import json
import logging
from pathlib import Path

from mlstack.folders import copy_into_place
from rag_chatbot.registry import Registry

log = logging.getLogger(__name__)


def open_registry(
    registry: Registry, index_dir: Path | None, uploads_dir: Path, *, seeded: bool
) -> None:
    """Fills a new registry from the JSON files of earlier versions (the index's `manifest.json`,
    the uploads' `uploads.json`), once; `seeded`: the index was just copied from the corpus, so
    its corpus rows are replaced and every upload is queued to be written again."""
    if not seeded and registry.imported():
        return
    manifest_path = index_dir / "manifest.json" if index_dir else None
    manifest = (
        json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest_path and manifest_path.exists()
        else {}
    )
    legacy = uploads_dir / "uploads.json"
    uploads = json.loads(legacy.read_text()) if legacy.exists() else {}
    files = {}
    if registry.keeps_files:  # the legacy files move into the database with their rows
        for up in uploads.values():
            if (uploads_dir / up["sha256"]).exists():
                files[up["sha256"]] = (uploads_dir / up["sha256"]).read_bytes()
    registry.import_manifest(manifest, uploads, replace_corpus=seeded, files=files)
    if legacy.exists():
        legacy.replace(legacy.with_suffix(".json.migrated"))


def seed_index(index_dir: Path, corpus_index: Path | None) -> bool:
    """Copies the corpus index to `index_dir` if that does not exist yet; True if it did."""
    if index_dir.exists() or corpus_index is None or not corpus_index.exists():
        return False
    if not copy_into_place(corpus_index, index_dir):  # another worker seeded it first
        return False
    log.info("seeded %s from %s", index_dir, corpus_index)
    return True
