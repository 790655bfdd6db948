"""The prepare stage: splits, stratification, duplicates, unreadable files, other sources."""

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pandas as pd
from PIL import Image

from image_classifier.splits import prepare, read_split


def test_digits_split_is_stratified_and_disjoint(digits_dir):
    splits = {s: read_split(digits_dir, s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 1797
    assert json.loads((digits_dir / "labels.json").read_text()) == [str(i) for i in range(10)]
    for part in splits.values():
        counts = Counter(s.label for s in part)
        assert len(counts) == 10 and max(counts.values()) / min(counts.values()) < 1.5
    contents = {
        name: {hashlib.sha256(s.path.read_bytes()).hexdigest() for s in part}
        for name, part in splits.items()
    }
    assert not contents["train"] & contents["test"] and not contents["train"] & contents["val"]
    reference = pd.read_parquet(digits_dir / "reference.parquet")
    assert len(reference) == len(splits["train"])
    assert {"brightness", "contrast", "width", "height", "label"} == set(reference.columns)


def make_folder(root: Path) -> None:
    for label, colour in (("cat", 40), ("dog", 200)):
        (root / label).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (12, 12), colour + i).save(root / label / f"{i}.png")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dog" / "copy.png").write_bytes((root / "dog" / "3.png").read_bytes())


def prepare_small(source: str, tmp_path: Path) -> dict:
    return prepare(
        source, tmp_path / "out", tmp_path / "r.json", val_size=0.2, test_size=0.2, seed=0
    )


def test_image_folder_reports_broken_and_keeps_duplicates_together(tmp_path):
    make_folder(tmp_path / "images")
    report = prepare_small(str(tmp_path / "images"), tmp_path)
    assert report["images"] == 22 and len(report["unreadable"]) == 1
    assert "broken.png" in report["unreadable"][0]["path"]
    assert report["exact_duplicates"] == 1
    where = {
        s.path.name: split
        for split in ("train", "val", "test")
        for s in read_split(tmp_path / "out", split)
        if s.label == "dog"
    }
    assert where["copy.png"] == where["3.png"]


def test_csv_manifest_source(tmp_path):
    make_folder(tmp_path / "images")
    with (tmp_path / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for p in sorted((tmp_path / "images").rglob("[0-9].png")):
            writer.writerow([p.relative_to(tmp_path), p.parent.name])
    report = prepare_small(str(tmp_path / "manifest.csv"), tmp_path)
    assert report["images"] == 20 and report["splits"]["test"] == 4
