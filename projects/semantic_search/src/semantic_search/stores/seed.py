"""A service's own index, seeded from the pipeline's: `dvc repro` rebuilds the pipeline's index
(and evaluates on it), so a service that wrote uploads into it would lose them on every rebuild
and mix them into the benchmark. The service writes to a copy instead, made on first start.

The copy is stamped with the encoder whose vectors it holds (`stamp_encoder`): a service started
later with another encoder (a new champion) would compare its query vectors with the old
encoder's and rank nonsense, so it refuses to start and says how to re-index."""

import json
import logging
import os
from pathlib import Path

from mlstack.folders import copy_into_place

log = logging.getLogger(__name__)


def seed_index(index_dir: Path, corpus_index: Path | None) -> bool:
    """Copies `corpus_index` to `index_dir` if that does not exist yet; True if this call did.

    Safe with several workers starting at once: the first copy renamed into place is used, and a
    half-made copy is never seen under the real name (`copy_into_place`)."""
    index_dir, corpus_index = Path(index_dir), corpus_index and Path(corpus_index)
    if index_dir.exists() or corpus_index is None or not corpus_index.exists():
        return False
    if not any(corpus_index.iterdir()):  # e.g. the folder Docker makes for a missing bind mount
        raise FileNotFoundError(
            f"{corpus_index} is empty: no index to seed {index_dir} from "
            "(run `dvc repro ss_register`, or set corpus_index to none)"
        )
    if not copy_into_place(corpus_index, index_dir):  # another worker seeded it first
        return False
    log.info("seeded %s from %s", index_dir, corpus_index)
    return True


STAMP = "encoder-stamp.json"


class EncoderMismatchError(RuntimeError):
    pass


REMEDY = (
    "stop the service, move that index away and start again to re-seed it from the "
    "champion's, then ingest uploads again; or serve the old encoder"
)


def stamp_encoder(index_dir: Path, encoder, sha256: str, remedy: str = REMEDY) -> None:
    """Records `encoder` (an `Encoder`: its name, variant, and `sha256` of its model file) in a
    local index the first time a service opens it; afterwards refuses an encoder with other
    weights. The int8 and fp32 variants of one model differ in their files but not their
    vectors (cosine 0.9999): a change of variant alone is allowed and re-stamped."""
    encoder = {"name": encoder.name, "variant": encoder.variant, "sha256": sha256}
    path = Path(index_dir) / STAMP
    held = json.loads(path.read_text()) if path.exists() else None
    same_weights = held and held["variant"] == encoder["variant"]
    if held and same_weights and held["sha256"] != encoder["sha256"]:
        raise EncoderMismatchError(
            f"{index_dir} holds vectors of {held['name']} ({held['variant']}, sha256 "
            f"{held['sha256'][:12]}), not of the encoder loaded now ({encoder['sha256'][:12]}; a "
            f"new champion?): {remedy}"
        )
    if held != encoder:
        tmp = path.with_name(f".{STAMP}.{os.getpid()}")
        tmp.write_text(json.dumps(encoder))
        tmp.replace(path)
