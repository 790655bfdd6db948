import json

import pytest
import torch

from image_classifier.export import export_model
from image_classifier.models import CompactResNet, ResNetConfig
from image_classifier.splits import prepare
from image_classifier.transforms import Preprocess

TINY = {"widths": [8, 16], "blocks": [1, 1], "dropout": 0.0}


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    prepare("digits", out / "data", out / "report.json", val_size=0.15, test_size=0.15, seed=0)
    return out / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(digits_dir, tmp_path_factory):
    """An untrained tiny ResNet with a card and checkpoint, exported to ONNX (fast, real files)."""
    from safetensors.torch import save_model

    model_dir = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = CompactResNet(ResNetConfig(num_classes=10, **TINY)).eval()
    save_model(model, str(model_dir / "model.safetensors"))
    card = {
        "name": "resnet",
        "labels": [str(i) for i in range(10)],
        "params": TINY,
        "preprocess": Preprocess(16).to_dict(),
        "val_accuracy": 0.0,
    }
    (model_dir / "card.json").write_text(json.dumps(card))
    export_model(model_dir, digits_dir, version="7")
    return model_dir
