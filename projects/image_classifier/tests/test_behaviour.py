"""ic_behaviour's tests on real digits: a reasonable model passes, and a broken one fails the
test that exists to catch it."""

import json

import numpy as np
import pytest
from PIL import Image

from image_classifier.behaviour import behaviour, run_tests
from image_classifier.splits import read_split
from image_classifier.transforms import Preprocess
from mlstack.validate import ValidationError

LABELS = [str(i) for i in range(10)]
PRE = Preprocess(8)
PARAMS = {
    "brightness": [0.8, 1.2],
    "shift_pixels": 1,
    "min_invariance": 0.6,
    "noise_std": 0.6,
    "min_confidence_drop": 0.1,
    "min_class_accuracy": 0.7,
}


def load(digits_dir, split, limit=None):
    samples = read_split(digits_dir, split)[:limit]
    return [Image.open(s.path).copy() for s in samples], np.array([int(s.label) for s in samples])


@pytest.fixture(scope="module")
def test_images(digits_dir):
    return load(digits_dir, "test", limit=150)


@pytest.fixture(scope="module")
def pixel_model(digits_dir):
    """A real (if simple) model: logistic regression on the training pixels."""
    from sklearn.linear_model import LogisticRegression

    images, y = load(digits_dir, "train")
    x = np.stack([PRE(im) for im in images]).reshape(len(images), -1)
    model = LogisticRegression(max_iter=300).fit(x, y)
    return lambda batch: model.predict_proba(batch.reshape(len(batch), -1))


def constant(batch):
    """A broken model: the same confident answer whatever it is shown."""
    probs = np.full((len(batch), 10), 0.01)
    probs[:, 1] = 0.91
    return probs


def by_brightness(batch):
    """A model that learned brightness, not shape."""
    level = ((batch.mean(axis=(1, 2, 3)) + 1) * 20).astype(int) % 10
    return np.eye(10)[level] * 0.9 + 0.01


def test_a_pixel_model_passes_the_class_floor_and_brightness_but_not_shifts(
    pixel_model, test_images
):
    """Accurate and tolerant of brightness, yet a pixel model never saw a digit moved: the
    shift tests catch what the accuracy does not."""
    checks = run_tests(pixel_model, *test_images, LABELS, PRE, PARAMS)
    assert checks.figures["accuracy"] > 0.9
    results = checks.results
    assert results["min_class_accuracy"]["passed"], results["min_class_accuracy"]
    assert results["invariance_brightness_x0.8"]["passed"]
    assert results["invariance_brightness_x1.2"]["passed"]
    assert {f"invariance_shift_{d}" for d in ("left", "right", "up", "down")} <= set(checks.failed)


def test_a_constant_model_fails_the_class_floor_and_the_noise_test(test_images):
    checks = run_tests(constant, *test_images, LABELS, PRE, PARAMS)
    assert set(checks.failed) == {"min_class_accuracy", "directional_noise_lowers_confidence"}


def test_a_model_of_brightness_fails_invariance(test_images):
    checks = run_tests(by_brightness, *test_images, LABELS, PRE, PARAMS)
    assert "invariance_brightness_x0.8" in checks.failed
    assert "invariance_brightness_x1.2" in checks.failed


def test_the_stage_fails_loudly_on_an_untrained_model(tiny_model_dir, digits_dir, tmp_path):
    """The real stage on a real (untrained) ONNX export: it writes the report and raises."""
    with pytest.raises(ValidationError, match="min_class_accuracy"):
        behaviour(tiny_model_dir, digits_dir, tmp_path / "behaviour.json", PARAMS)
    report = json.loads((tmp_path / "behaviour.json").read_text())
    assert report["passed"] is False and "min_class_accuracy" in report["failed"]
