"""Behaviour stage (`ic_behaviour`): behavioural tests of a trained model (its ONNX export, what
serves) on the test split, beyond its accuracy:

- invariance: a small change of brightness, or the digit moved by a pixel, keeps the prediction
  on most images;
- directional: heavy noise lowers the model's confidence (a model as sure of noise as of a digit
  has learned something other than digits);
- minimum functionality: every class reaches an accuracy floor (an average can hide one class
  the model never gets right).

Any test below its bound fails the stage; the report is `reports/image_classifier/<model>/
behaviour.json`.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from image_classifier.splits import read_split
from image_classifier.transforms import Preprocess, shift
from mlstack.validate import Checks

Predict = Callable[[np.ndarray], np.ndarray]  # preprocessed batch -> class probabilities


def brighten(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def add_noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0, std * 255, pixels.shape)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), mode=image.mode)


def onnx_predictor(model_path: Path, threads: int = 2) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        logits = np.concatenate(
            [session.run(None, {name: x[i : i + 64]})[0] for i in range(0, len(x), 64)]
        )
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    return predict


def run_tests(
    predict: Predict,
    images: list[Image.Image],
    targets: np.ndarray,
    labels: list[str],
    preprocess: Preprocess,
    params: dict[str, Any],
) -> Checks:
    def probs(batch: list[Image.Image]) -> np.ndarray:
        return predict(np.stack([preprocess(image) for image in batch]))

    clean = probs(images)
    pred = clean.argmax(1)
    checks = Checks()
    checks.figures = {"images": len(images), "accuracy": round(float((pred == targets).mean()), 4)}

    d = params["shift_pixels"]
    perturbations: dict[str, Callable[[Image.Image], Image.Image]] = {
        f"brightness_x{f}": (lambda im, f=f: brighten(im, f)) for f in params["brightness"]
    }
    perturbations |= {
        f"shift_{name}": (lambda im, dx=dx, dy=dy: shift(im, dx, dy))
        for name, dx, dy in (("right", d, 0), ("left", -d, 0), ("down", 0, d), ("up", 0, -d))
    }
    for name, perturb in perturbations.items():
        kept = float((probs([perturb(im) for im in images]).argmax(1) == pred).mean())
        checks.threshold(f"invariance_{name}", kept, floor=params["min_invariance"])

    rng = np.random.default_rng(0)
    noisy = probs([add_noise(im, params["noise_std"], rng) for im in images])
    drop = float(clean.max(1).mean() - noisy.max(1).mean())
    checks.threshold(
        "directional_noise_lowers_confidence", drop, floor=params["min_confidence_drop"]
    )

    per_class = {
        label: round(float((pred[targets == i] == i).mean()), 4) if (targets == i).any() else 0.0
        for i, label in enumerate(labels)
    }
    worst = min(per_class, key=per_class.__getitem__)
    checks.add(
        "min_class_accuracy",
        per_class[worst] >= params["min_class_accuracy"],
        {"worst_class": worst, "per_class": per_class, "floor": params["min_class_accuracy"]},
    )
    return checks


def behaviour(
    model_dir: Path, data_dir: Path, report_path: Path, params: dict[str, Any]
) -> dict[str, Any]:
    import json

    card = json.loads((model_dir / "card.json").read_text())
    labels = card["labels"]
    samples = read_split(data_dir, "test")
    images = [Image.open(s.path).copy() for s in samples]
    targets = np.asarray([labels.index(s.label) for s in samples])
    checks = run_tests(
        onnx_predictor(model_dir / "model.onnx"),
        images,
        targets,
        labels,
        Preprocess.from_dict(card["preprocess"]),
        params,
    )
    return checks.finish(report_path)
