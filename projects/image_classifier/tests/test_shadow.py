"""The classifier with a shadow challenger, over HTTP: byte-identical responses, one comparison
record per image, and a report that matches what the two models answer when served directly."""

import base64
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from image_classifier.service import build_app
from image_classifier.testing import tiny_onnx, tiny_settings
from mlstack.monitor.inference_log import read_inference_log
from mlstack.monitor.shadow_report import shadow_report
from mlstack.testing import live_server


def colour_png(rgb) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), tuple(int(c) for c in rgb)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def requests_():
    colours = np.random.default_rng(3).integers(0, 256, (24, 3))
    images = [colour_png(c) for c in colours]
    # Batches of 1 to 3 images, plus one undecodable image (a 400 that carries the request id).
    bodies = [{"images": images[i : i + 1 + k % 3]} for k, i in enumerate(range(0, 24, 3))]
    return [*bodies, {"images": ["bm90IGFuIGltYWdl"]}]


def call_all(base: str, bodies: list[dict], path: str = "/v1/classify") -> list[httpx.Response]:
    return [
        httpx.post(f"{base}{path}", json=b, headers={"X-Request-ID": f"id-{i}"})
        for i, b in enumerate(bodies)
    ]


def test_shadow_leaves_responses_identical_and_report_matches(tmp_path, requests_):
    challenger = tiny_onnx(tmp_path / "challenger", seed=12)  # other weights: agrees on ~30%
    plain = tiny_settings(tmp_path / "a", imagenet_model_path=challenger)
    with live_server(build_app(plain)) as base:
        alone = call_all(base, requests_)
        # The challenger served as a model of its own: what it answers to the same images.
        direct = call_all(base, requests_[:-1], "/v1/classify/imagenet")

    monitor = tmp_path / "monitor"
    shadowed = tiny_settings(tmp_path / "b", shadow_model=challenger, monitor_dir=monitor)
    with live_server(build_app(shadowed)) as base:
        with_shadow = call_all(base, requests_)
        deadline = time.monotonic() + 10
        while (shadow := httpx.get(f"{base}/v1/models").json()["data"][0]["shadow"])["counts"][
            "ok"
        ] < len(requests_) - 1:
            assert time.monotonic() < deadline, shadow
            time.sleep(0.02)

    assert [r.status_code for r in alone] == [200] * (len(requests_) - 1) + [400]
    assert [(r.status_code, r.content) for r in with_shadow] == [
        (r.status_code, r.content) for r in alone
    ]
    assert shadow["model"] == "challenger" and shadow["counts"]["dropped"] == 0

    champion_labels = [p["top_k"][0]["label"] for r in alone[:-1] for p in r.json()["predictions"]]
    shadow_labels = [p["top_k"][0]["label"] for r in direct for p in r.json()["predictions"]]
    expected = np.mean(np.array(champion_labels) == np.array(shadow_labels))
    assert 0 < expected < 1  # the test would not tell agreement from disagreement otherwise

    frame = read_inference_log(monitor, include_shadow=True)
    assert (frame["role"] == "champion").sum() == len(champion_labels)
    # What the drift job reads: the traffic only, never the challenger's answers.
    assert set(read_inference_log(monitor)["role"]) == {"champion"}
    pair = shadow_report(frame)["pairs"][0]
    assert (pair["champion"], pair["challenger"]) == ("digits", "challenger")
    assert pair["items"] == len(champion_labels) and pair["requests"] == len(requests_) - 1
    assert pair["coverage"] == 1.0  # share 1.0, nothing dropped: every logged image compared
    assert pair["agreement"] == pytest.approx(expected, abs=1e-4)
    confusion_total = sum(n for row in pair["confusion"].values() for n in row.values())
    assert confusion_total == len(champion_labels)


def test_shadow_with_other_preprocessing_is_refused_at_start(tmp_path):
    challenger = tiny_onnx(tmp_path / "challenger", image_size=24)
    settings = tiny_settings(tmp_path / "a", shadow_model=challenger)
    with live_server(build_app(settings), wait_ready=False) as base:
        deadline = time.monotonic() + 10
        while "failed" not in (reason := httpx.get(f"{base}/readyz").text):
            assert time.monotonic() < deadline, reason
            time.sleep(0.05)
    assert "differs from the champion in preprocessing" in reason
