"""ic_validate on the real digits splits, and on copies broken one way each: every check fails
the stage on the data it exists for."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from image_classifier.validate import validate
from mlstack.validate import ValidationError

PARAMS = {
    "image_modes": ["L", "RGB"],
    "image_size": [8, 8],
    "min_pixel_range": 64,
    "class_share": [0.07, 0.13],
    "min_images": {"train": 1000, "val": 200, "test": 200},
}


@pytest.fixture
def data(digits_dir, tmp_path):
    """The manifests and labels copied (the images stay where they are: paths are absolute)."""
    out = tmp_path / "data"
    out.mkdir()
    for name in ("train.csv", "val.csv", "test.csv", "labels.json"):
        shutil.copy(digits_dir / name, out / name)
    return out


def rows(data, split):
    with (data / f"{split}.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def write(data, split, entries):
    with (data / f"{split}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label"])
        writer.writeheader()
        writer.writerows(entries)


def failed(data, tmp_path, params=PARAMS):
    with pytest.raises(ValidationError) as exc:
        validate(data, tmp_path / "report.json", params)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["failed"], report
    return report, str(exc.value)


def test_the_prepared_digits_pass(data, tmp_path):
    report = validate(data, tmp_path / "report.json", PARAMS)
    assert report["passed"] and report["images"] == 1797
    assert report["checks"]["no_leakage"] == {"passed": True}


def test_an_image_in_two_splits_is_leakage(data, tmp_path):
    # a test image saved again under another name (other bytes, same pixels) in train
    test_row = rows(data, "test")[0]
    copy = tmp_path / "copy.bmp"
    Image.open(test_row["path"]).save(copy)
    write(data, "train", [*rows(data, "train"), {"path": str(copy), "label": test_row["label"]}])
    report, message = failed(data, tmp_path)
    assert report["failed"] == ["no_leakage"], report["failed"]
    assert report["checks"]["no_leakage"]["detail"]["train/test"]["shared"] == 1
    assert "no_leakage" in message


def test_blank_wrong_size_and_unknown_label_images_fail_the_schema(data, tmp_path):
    blank, big = tmp_path / "blank.png", tmp_path / "big.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(blank)
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L").save(big)
    extra = [
        {"path": str(blank), "label": "3"},
        {"path": str(big), "label": "4"},
        {"path": rows(data, "train")[0]["path"].replace(".png", "-gone.png"), "label": "5"},
        {"path": rows(data, "train")[1]["path"], "label": "cat"},
    ]
    write(data, "train", rows(data, "train")[2:] + extra)
    report, _ = failed(data, tmp_path)
    checks = {f["check"] for f in report["checks"]["images"]["detail"]["failures"]}
    assert "equal_to(8)" in checks and "equal_to()" in checks, checks  # size; unreadable
    assert any("blank" in c for c in checks) and any(c.startswith("isin") for c in checks)


def test_a_class_missing_from_a_split_or_too_rare_fails_the_balance(data, tmp_path):
    write(data, "val", [r for r in rows(data, "val") if r["label"] != "7"])
    report, _ = failed(data, tmp_path)
    assert "class_balance" in report["failed"]
    failures = report["checks"]["class_balance"]["detail"]["failures"]
    assert {f["column"] for f in failures} >= {"count", "share"}


def test_a_split_too_small_fails(data, tmp_path):
    write(data, "test", rows(data, "test")[:50])
    report, _ = failed(data, tmp_path, PARAMS | {"class_share": [0.0, 1.0]})
    assert report["failed"] == ["split_sizes"]
