"""The service over real HTTP with a small model: formats, batches, concurrency, bad input."""

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from image_classifier.service import build_app
from image_classifier.settings import Settings
from mlstack.testing import live_server


def png(size=(8, 8), value=128) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def noise_png(side: int = 64) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def service(tiny_model_dir, tmp_path_factory):
    monitor = tmp_path_factory.mktemp("monitor")
    settings = Settings(
        model_path=tiny_model_dir / "model.onnx",
        imagenet_model_path=None,
        max_images=4,
        max_pixels=1_000_000,
        max_body_bytes=200_000,
        max_batch_size=8,
        max_wait_ms=20,
        monitor_dir=monitor,
        onnx_threads=1,
    )
    with live_server(build_app(settings)) as base:
        yield base, monitor


def error_of(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_multipart_upload_top_k(service):
    base, _ = service
    r = httpx.post(
        f"{base}/v1/classify", files={"file": ("d.png", png(), "image/png")}, data={"top_k": "3"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"]) == ("digits", "7")
    top = body["predictions"][0]["top_k"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    assert {t["label"] for t in top} <= {str(i) for i in range(10)}


def test_json_base64_batch_and_named_model(service):
    base, _ = service
    images = [base64.b64encode(png(value=v)).decode() for v in (0, 255)]
    images[1] = "data:image/png;base64," + images[1]
    r = httpx.post(f"{base}/v1/classify/digits", json={"images": images, "top_k": 2})
    assert r.status_code == 200, r.text
    assert [len(p["top_k"]) for p in r.json()["predictions"]] == [2, 2]
    several = httpx.post(
        f"{base}/v1/classify",
        files=[("files", (f"{i}.png", png(value=i * 60), "image/png")) for i in range(3)],
    )
    assert len(several.json()["predictions"]) == 3


def test_concurrent_requests_are_batched(service):
    base, _ = service

    async def fire():
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/classify", json={"image": base64.b64encode(png(value=i)).decode()}
                    )
                    for i in range(24)
                )
            )

    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics").text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    batches = {
        s.name: s.value
        for s in samples
        if s.name.startswith("model_batch_size")
        and s.labels.get("model") == "digits"
        and s.name != "model_batch_size_bucket"
    }
    assert batches["model_batch_size_sum"] > batches["model_batch_size_count"]  # mean batch > 1
    predicted = sum(s.value for s in samples if s.name == "model_predictions_total")
    assert predicted >= 24


@pytest.mark.parametrize(
    "kwargs,status,code,param",
    [
        (
            {"content": b"hello", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
            "content-type",
        ),
        (
            {"files": {"file": ("a.txt", b"hello", "text/plain")}},
            415,
            "unsupported_media_type",
            "file",
        ),
        (
            {"files": {"file": ("a.png", b"not an image at all", "image/png")}},
            400,
            "invalid_image",
            "file",
        ),
        (
            {"files": {"file": ("a.png", noise_png()[:3000], "image/png")}},
            400,
            "corrupt_image",
            "file",
        ),
        ({"files": {"file": ("a.png", b"", "image/png")}}, 400, "empty_image", "file"),
        ({"json": {"image": "%%%not-base64%%%"}}, 400, "invalid_base64", "image"),
        ({"json": {"images": ["aGk="] * 5}}, 422, "too_many_images", "images"),
        ({"json": {}}, 422, "missing_image", "image"),
        ({"json": {"image": "aGk=", "top_k": 0}}, 422, "invalid_greater_than_equal", "top_k"),
        (
            {"content": b"{bad json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
            "body",
        ),
        ({"data": {"top_k": "3"}, "files": {}}, 415, "unsupported_media_type", "content-type"),
    ],
)
def test_bad_input_is_a_clear_4xx(service, kwargs, status, code, param):
    base, _ = service
    error = error_of(httpx.post(f"{base}/v1/classify", **kwargs), status, code)
    assert error["param"] == param


def test_limits_name_the_limit(service):
    base, _ = service
    bomb = png(size=(2000, 2000), value=0)  # 4 MP that compresses to a few KB
    assert len(bomb) < 200_000
    error = error_of(
        httpx.post(f"{base}/v1/classify", files={"file": ("b.png", bomb, "image/png")}),
        422,
        "image_too_large",
    )
    assert error["limit"] == 1_000_000 and "2000x2000" in error["message"]
    noisy = noise_png(600)  # incompressible: over the byte limit
    error = error_of(
        httpx.post(f"{base}/v1/classify", files={"file": ("n.png", noisy, "image/png")}),
        413,
        "payload_too_large",
    )
    assert error["limit"] == 200_000
    error = error_of(
        httpx.post(
            f"{base}/v1/classify",
            files=[("files", (f"{i}.png", png(), "image/png")) for i in range(5)],
        ),
        422,
        "too_many_images",
    )
    assert error["limit"] == 4
    error_of(httpx.post(f"{base}/v1/classify/nope", json={"image": "aGk="}), 404, "model_not_found")


def test_inference_log_records_image_stats(service):
    from mlstack.monitor.inference_log import read_inference_log

    base, monitor = service
    httpx.post(f"{base}/v1/classify", files={"file": ("d.png", png(size=(20, 10)), "image/png")})
    frame = read_inference_log(monitor)
    assert {"brightness", "contrast", "width", "height", "label", "confidence"} <= set(
        frame.columns
    )
    assert ((frame["width"] == 20) & (frame["height"] == 10)).any()


def test_models_and_demo_page(service):
    base, _ = service
    models = httpx.get(f"{base}/v1/models").json()["data"]
    assert models[0]["id"] == "digits" and models[0]["classes"] == 10
    page = httpx.get(f"{base}/", follow_redirects=True)
    assert page.status_code == 200 and "Drop an image" in page.text
    assert json.loads(httpx.get(f"{base}/openapi.json").text)["paths"]["/v1/classify"]
