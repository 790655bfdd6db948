"""Export stage: the trained checkpoint -> `model.onnx` with labels and preprocessing inside,
parity checked against torch on the real test set."""

import json
from pathlib import Path
from typing import Any

import torch

from image_classifier.dataset import ImageDataset
from image_classifier.models import build_model
from image_classifier.splits import read_split
from image_classifier.transforms import Preprocess
from mlstack.export import check_parity, export_onnx, provenance
from mlstack.train.loop import load_checkpoint

INPUT, OUTPUT = "pixels", "logits"


def load_trained(model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    card = json.loads((model_dir / "card.json").read_text())
    model = build_model(card["name"], len(card["labels"]), card["params"], pretrained=False)
    return load_checkpoint(model, model_dir / "model.safetensors").eval(), card


def serving_metadata(card: dict[str, Any], version: str) -> dict[str, str]:
    """What the service reads back from the ONNX file: no side files to keep in sync."""
    return {
        "name": card["name"],
        "version": version,
        "labels": json.dumps(card["labels"]),
        "preprocess": json.dumps(card["preprocess"]),
    }


def export_model(model_dir: Path, data_dir: Path, *, version: str) -> dict[str, Any]:
    model, card = load_trained(model_dir)
    size = card["preprocess"]["image_size"]
    path = export_onnx(
        model,
        {INPUT: torch.zeros(1, 3, size, size)},
        model_dir / "model.onnx",
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        metadata={
            **provenance(f"image_classifier/{card['name']}", card["params"]),
            **serving_metadata(card, version),
        },
    )
    test = ImageDataset(
        read_split(data_dir, "test"), card["labels"], Preprocess.from_dict(card["preprocess"])
    )
    x, _ = test.arrays()
    report = check_parity(model, path, {INPUT: x}, atol=1e-3, min_top1=1.0)
    result = {"onnx": str(path), "parity": report.to_dict()}
    (model_dir / "export.json").write_text(json.dumps(result, indent=2))
    return result
