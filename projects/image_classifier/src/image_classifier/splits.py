"""Prepare stage: a source of labelled images -> checked, stratified train/val/test manifests.

Sources: `digits` (scikit-learn's 1,797 handwritten digits, written out as an image folder), any
image folder laid out as `root/<class>/<image>`, or a CSV manifest with `path,label` columns.
Checks: unreadable files are reported and skipped, exact duplicates are kept out of more than one
split, class balance is reported. Output: `<out>/{train,val,test}.csv`, `labels.json`,
`reference.parquet` (image statistics of the training set, for drift), and the check report
at `report_path`.
"""

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from image_classifier.transforms import image_stats

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")


@dataclass
class Sample:
    path: Path
    label: str


def write_digits(root: Path) -> Path:
    """Writes scikit-learn's digits as `root/<digit>/<index>.png` (8x8 grayscale, 0-255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), mode="L")
        image.save(folder / f"{i:04d}.png")
    return root


def scan_folder(root: Path) -> list[Sample]:
    return [
        Sample(path, class_dir.name)
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(class_dir.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def read_manifest(csv_path: Path) -> list[Sample]:
    """A CSV with `path,label` columns; relative paths are relative to the CSV's folder."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: needs 'path' and 'label' columns, has {list(rows[0])}")
    return [Sample((csv_path.parent / r["path"]).resolve(), r["label"]) for r in rows]


def check_images(samples: list[Sample]) -> tuple[list[Sample], list[dict], dict[str, str]]:
    """Drops unreadable images; returns (good samples, problems, content hash per path)."""
    good, problems, hashes = [], [], {}
    for sample in samples:
        try:
            data = sample.path.read_bytes()
            with Image.open(sample.path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            problems.append({"path": str(sample.path), "error": f"{type(exc).__name__}: {exc}"})
            continue
        hashes[str(sample.path)] = hashlib.sha256(data).hexdigest()
        good.append(sample)
    return good, problems, hashes


def stratified_split(
    samples: list[Sample], hashes: dict[str, str], val_size: float, test_size: float, seed: int
) -> dict[str, list[Sample]]:
    """Splits per class; all copies of one image content land in the same split."""
    from sklearn.model_selection import train_test_split

    groups: dict[str, list[Sample]] = {}
    for s in samples:  # one group per distinct content: duplicates travel together
        groups.setdefault(hashes[str(s.path)], []).append(s)
    keys = sorted(groups)
    labels = [groups[k][0].label for k in keys]
    rest, test = train_test_split(keys, test_size=test_size, stratify=labels, random_state=seed)
    rest_labels = [groups[k][0].label for k in rest]
    train, val = train_test_split(
        rest, test_size=val_size / (1 - test_size), stratify=rest_labels, random_state=seed
    )
    return {
        name: [s for k in sorted(part) for s in groups[k]]
        for name, part in zip(SPLITS, (train, val, test), strict=True)
    }


def prepare(
    source: str, out_dir: Path, report_path: Path, *, val_size: float, test_size: float, seed: int
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    if source == "digits":
        samples = scan_folder(write_digits(out_dir / "images"))
    elif (path := Path(source)).is_dir():
        samples = scan_folder(path)
    elif path.suffix == ".csv":
        samples = read_manifest(path)
    else:
        raise ValueError(f"source must be 'digits', an image folder or a .csv manifest: {source}")
    if not samples:
        raise ValueError(f"no images found in {source}")

    good, problems, hashes = check_images(samples)
    splits = stratified_split(good, hashes, val_size, test_size, seed)
    labels = sorted({s.label for s in good}, key=lambda x: (len(x), x))
    for name, part in splits.items():
        with (out_dir / f"{name}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label"])
            writer.writerows([str(s.path.resolve()), s.label] for s in part)
    (out_dir / "labels.json").write_text(json.dumps(labels))
    _write_reference(splits["train"], out_dir / "reference.parquet")

    duplicates = len(good) - len(set(hashes.values()))
    report = {
        "source": source,
        "images": len(samples),
        "unreadable": problems,
        "exact_duplicates": duplicates,
        "splits": {name: len(part) for name, part in splits.items()},
        "class_counts": {
            name: dict(Counter(s.label for s in part)) for name, part in splits.items()
        },
        "imbalance_ratio": _imbalance(Counter(s.label for s in good)),
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def _imbalance(counts: Counter) -> float:
    return round(max(counts.values()) / min(counts.values()), 3)


def _write_reference(samples: list[Sample], path: Path) -> None:
    """Image statistics of the training set: the reference that drift reports compare with."""
    import pandas as pd

    rows = []
    for s in samples:
        with Image.open(s.path) as image:
            rows.append({**image_stats(image), "label": s.label})
    pd.DataFrame(rows).to_parquet(path, index=False)


def read_split(out_dir: Path, split: str) -> list[Sample]:
    with (out_dir / f"{split}.csv").open(newline="") as f:
        return [Sample(Path(r["path"]), r["label"]) for r in csv.DictReader(f)]
