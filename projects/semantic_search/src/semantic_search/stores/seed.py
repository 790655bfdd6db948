"""A service's own index, seeded from the pipeline's: `dvc repro` rebuilds the pipeline's index
(and evaluates on it), so a service that wrote uploads into it would lose them on every rebuild
and mix them into the benchmark. The service writes to a copy instead, made on first start."""

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def seed_index(index_dir: Path, corpus_index: Path | None) -> bool:
    """Copies `corpus_index` to `index_dir` if that does not exist yet; True if this call did.

    Safe with several workers starting at once: each copies to a folder of its own and renames
    it into place; a rename onto a folder another worker already put there fails, and that
    worker's copy is used. A half-made copy is never seen under the real name."""
    index_dir, corpus_index = Path(index_dir), corpus_index and Path(corpus_index)
    if index_dir.exists() or corpus_index is None or not corpus_index.exists():
        return False
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.with_name(f".{index_dir.name}.seeding-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed start with this pid
    shutil.copytree(corpus_index, tmp)
    try:
        tmp.rename(index_dir)
    except OSError:  # another worker seeded it first
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    log.info("seeded %s from %s", index_dir, corpus_index)
    return True
