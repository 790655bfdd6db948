"""Export parity, and a short training run that really learns."""

import json

import numpy as np

from image_classifier.predictor import OnnxClassifier
from image_classifier.train import train_model

from .conftest import TINY


def test_export_parity_and_metadata(tiny_model_dir):
    export = json.loads((tiny_model_dir / "export.json").read_text())
    assert export["parity"]["passed"] and export["parity"]["samples"] > 200
    assert export["parity"]["max_abs_diff"] < 1e-3
    classifier = OnnxClassifier(tiny_model_dir / "model.onnx")
    assert classifier.labels == [str(i) for i in range(10)]
    assert classifier.card.version == "7" and len(classifier.card.sha256) == 64
    probs = classifier.predict_batch([np.zeros((3, 16, 16), np.float32)] * 3)
    assert len(probs) == 3 and np.allclose([p.sum() for p in probs], 1.0)


def test_short_training_run_learns(digits_dir, tmp_path):
    params = {
        **TINY,
        "image_size": 16,
        "epochs": 4,
        "batch_size": 64,
        "lr": 0.01,
        "weight_decay": 0.0,
        "warmup_ratio": 0.0,
        "label_smoothing": 0.0,
        "patience": 4,
        "seed": 0,
        "pretrained": False,
        "augment": {"scale": [0.9, 1.0], "rotation": 0, "hflip": False},
    }
    card = train_model("resnet", params, digits_dir, tmp_path, log_mlflow=False, progress=False)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert card["val_accuracy"] > 0.5  # chance is 0.1
    assert (tmp_path / "model.safetensors").exists()
