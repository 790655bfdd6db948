"""Request budgets, bounded memory, readiness, auth and the API contract, on the tiny model."""

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from image_classifier.decode import min_side_for, open_image, prepare
from image_classifier.testing import tiny_app
from image_classifier.transforms import Preprocess
from mlstack.testing import free_port, live_server


def white_pngs(count: int, side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), "white").save(buf, "PNG")
    return json.dumps({"images": [base64.b64encode(buf.getvalue()).decode()] * count}).encode()


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))


@pytest.fixture
def server_process(tmp_path):
    """The service in its own process, so its peak RSS is its own."""
    port = free_port()
    env = {**os.environ, "IMAGE_CLASSIFIER_MAX_REQUEST_PIXELS": str(16 * 25_000_000)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "image_classifier.testing", str(tmp_path), "--port", str(port)],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, "the service exited before it was ready"
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_sixteen_25mp_images_decode_one_at_a_time(server_process):
    """The issue's request: 16 solid-white 5000x5000 PNGs (1.8 MB of JSON). Before: 435 MB ->
    2.06 GB RSS, every image decoded and kept at once. Now one full-size image at a time."""
    base, pid = server_process
    before = peak_rss_mb(pid) / 1024
    r = httpx.post(
        f"{base}/v1/classify",
        content=white_pngs(16, 5000),
        headers={"content-type": "application/json"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    grown = peak_rss_mb(pid) / 1024 - before
    assert grown < 400, f"peak RSS grew by {grown:.0f} MB"  # one 75 MB image (+ its reduction)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with live_server(tiny_app(tmp_path_factory.mktemp("tiny"))) as url:
        yield url


def test_request_pixel_budget_is_checked_from_headers(base):
    body = white_pngs(16, 5000)
    r = httpx.post(
        f"{base}/v1/classify", content=body, headers={"content-type": "application/json"}
    )
    assert r.elapsed.total_seconds() < 1.0
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["param"]) == (422, "request_too_large", "images[2]")
    assert error["limit"] == 50_000_000


def test_decoding_runs_off_the_event_loop(base):
    """Health checks answer while a request decodes two 25-megapixel images."""
    body = white_pngs(2, 5000)
    done = threading.Event()

    def classify():
        httpx.post(
            f"{base}/v1/classify",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        done.set()

    worker = threading.Thread(target=classify)
    worker.start()
    slowest = 0.0
    while not done.is_set():
        r = httpx.get(f"{base}/healthz")
        slowest = max(slowest, r.elapsed.total_seconds())
        time.sleep(0.02)
    worker.join()
    assert slowest < 0.5, f"/healthz took {slowest:.2f} s during decoding"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_shrinking_before_preprocessing_keeps_the_model_input(fmt):
    """Reduced decoding (JPEG draft, box reduce) feeds the model what the full image would."""
    x = np.linspace(0, 255, 1600, dtype=np.float32)
    pixels = np.stack([np.add.outer(x[:1200] * 0.5, x * 0.5)] * 3, axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, quality=95)
    preprocess = Preprocess(32, crop_ratio=0.875)
    full = preprocess(Image.open(io.BytesIO(buf.getvalue())))
    side = min_side_for(preprocess)
    image = open_image("file", buf.getvalue(), max_pixels=10**8, min_side=side)
    assert image.size[0] < 1600 if fmt == "JPEG" else image.size == (1600, 1200)
    prepared = prepare("file", image, preprocess, side)
    assert np.abs(prepared.array - full).mean() < 0.01
    assert (prepared.stats["width"], prepared.stats["height"]) == (1600, 1200)


def test_failed_load_is_503_and_fails_liveness(tmp_path):
    app = tiny_app(tmp_path, model_path=tmp_path / "missing.onnx")
    with live_server(app, wait_ready=False) as url:
        for _ in range(100):
            if httpx.get(f"{url}/healthz").status_code == 503:
                break
            time.sleep(0.05)
        r = httpx.post(f"{url}/v1/classify", json={"image": "aGk="})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "not_ready"
        assert "missing.onnx" in httpx.get(f"{url}/readyz").json()["error"]["message"]
        assert httpx.get(f"{url}/healthz").status_code == 503


def test_api_key_guards_classify(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    body = {"image": base64.b64encode(png.getvalue()).decode()}
    with live_server(tiny_app(tmp_path, api_key="k1")) as url:
        assert httpx.post(f"{url}/v1/classify", json=body).status_code == 401
        ok = httpx.post(f"{url}/v1/classify", json=body, headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 200, ok.text
