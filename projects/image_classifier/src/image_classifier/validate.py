"""Validate stage (`ic_validate`, before `ic_train`): the prepared splits checked with pandera.

Every image of every split is decoded and described (size, mode, pixel range, a hash of its
pixels); the checks: the manifests' schema (labels from labels.json, readable images of the
expected size and mode), pixel values in 0-255 with some contrast (a blank or saturated image is
a broken export, not a digit), each split's size, each class's share of each split within
bounds, every class in every split, and no image (by its pixels, so a re-encoded copy counts) in
two splits. Any failure fails the stage, so DVC never trains on such data.
"""

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from image_classifier.splits import SPLITS, read_split
from mlstack.validate import Checks, content_hash, split_leakage


def describe(data_dir: Path) -> Any:
    """One row per image of every split: what the checks look at."""
    import pandas as pd

    rows = []
    for split in SPLITS:
        for sample in read_split(data_dir, split):
            row: dict[str, Any] = {"split": split, "path": str(sample.path), "label": sample.label}
            try:
                with Image.open(sample.path) as image:
                    image.load()
                    pixels = np.asarray(image)
                    rgb = image.convert("RGB")
                    row |= {"width": image.size[0], "height": image.size[1], "mode": image.mode}
            except (OSError, SyntaxError, ValueError) as exc:
                rows.append(row | {"error": f"{type(exc).__name__}: {exc}"})
                continue
            # the hash of the decoded pixels, not of the file: a copy saved again (other
            # compression, other format) is the same image and must not sit in two splits
            row |= {
                "pixel_min": int(pixels.min()),
                "pixel_max": int(pixels.max()),
                "hash": content_hash(f"{rgb.size}".encode() + rgb.tobytes()),
                "error": "",
            }
            rows.append(row)
    return pd.DataFrame(rows)


def image_schema(labels: list[str], params: dict[str, Any]) -> Any:
    import pandera.pandas as pa

    size = params.get("image_size")
    width = [pa.Check.eq(size[0])] if size else [pa.Check.gt(0)]
    height = [pa.Check.eq(size[1])] if size else [pa.Check.gt(0)]
    return pa.DataFrameSchema(
        {
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "path": pa.Column(str, unique=True),
            "label": pa.Column(str, pa.Check.isin(labels)),
            "error": pa.Column(str, pa.Check.eq(""), nullable=False),
            "width": pa.Column(float, width, coerce=True),
            "height": pa.Column(float, height, coerce=True),
            "mode": pa.Column(str, pa.Check.isin(params["image_modes"])),
            "pixel_min": pa.Column(float, pa.Check.ge(0), coerce=True),
            "pixel_max": pa.Column(float, pa.Check.le(255), coerce=True),
            "hash": pa.Column(str),
        },
        checks=[
            pa.Check(
                lambda df: df["pixel_max"] - df["pixel_min"] >= params["min_pixel_range"],
                name="pixel_range",
                error=f"max - min pixel under {params['min_pixel_range']}: blank or washed out",
            )
        ],
        strict=True,
    )


def balance_schema(labels: list[str], params: dict[str, Any]) -> Any:
    import pandera.pandas as pa

    low, high = params["class_share"]
    return pa.DataFrameSchema(
        {
            "split": pa.Column(str),
            "label": pa.Column(str, pa.Check.isin(labels)),
            "count": pa.Column(int, pa.Check.gt(0)),
            "share": pa.Column(float, pa.Check.in_range(low, high)),
        }
    )


def class_balance(frame: Any, labels: list[str]) -> Any:
    """Images per (split, class), every class of labels.json listed (a missing one counts 0)."""
    import pandas as pd

    counts = frame.groupby(["split", "label"]).size()
    full = pd.MultiIndex.from_product([SPLITS, labels], names=["split", "label"])
    table = counts.reindex(full, fill_value=0).rename("count").reset_index()
    totals = table.groupby("split")["count"].transform("sum").clip(lower=1)
    return table.assign(share=(table["count"] / totals).round(4))


def validate(data_dir: Path, report_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    import json

    labels = json.loads((data_dir / "labels.json").read_text())
    frame = describe(data_dir)
    checks = Checks()
    sizes = {s: int((frame["split"] == s).sum()) for s in SPLITS} if len(frame) else {}
    checks.figures = {"images": len(frame), "splits": sizes}
    checks.frame("images", frame, image_schema(labels, params))
    small = {s: n for s, n in sizes.items() if n < params["min_images"][s]}
    checks.add("split_sizes", not small, {"sizes": sizes, "minimum": params["min_images"]})
    balance = class_balance(frame, labels) if len(frame) else frame
    checks.frame("class_balance", balance, balance_schema(labels, params))
    hashes = frame.dropna(subset=["hash"]) if "hash" in frame else frame
    leaks = split_leakage(
        {s: hashes.loc[hashes["split"] == s, "hash"] for s in SPLITS} if len(hashes) else {}
    )
    checks.add("no_leakage", not leaks, leaks or None)
    return checks.finish(report_path)
