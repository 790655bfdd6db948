"""What a service image runs, run outside Docker: the real CLI, several uvicorn workers, no
torch, and a real Prometheus scraping the summed metrics of all workers."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlstack.testing import free_port

from .conftest import need


def test_service_modules_import_without_torch():
    code = (
        "import sys, image_classifier.service, image_classifier.cli, mlstack.serve.runner; "
        "heavy = {'torch', 'mlflow', 'evidently', 'pandas'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@contextlib.contextmanager
def started(cmd: list[str], env: dict, url: str, timeout_s: float = 60):
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                output = proc.communicate()[0].decode()[-3000:]
                raise RuntimeError(f"{cmd[0]} did not become ready in time: {output}")
            time.sleep(0.2)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def tiny_onnx(tmp: Path) -> Path:
    import json

    import torch

    from image_classifier.models import CompactResNet, ResNetConfig
    from image_classifier.transforms import Preprocess
    from mlstack.export import export_onnx

    model = CompactResNet(ResNetConfig(num_classes=3, widths=[4], blocks=[1]))
    return export_onnx(
        model,
        {"pixels": torch.zeros(1, 3, 8, 8)},
        tmp / "m.onnx",
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "b"}, "logits": {0: "b"}},
        metadata={
            "name": "tiny",
            "version": "1",
            "labels": json.dumps(list("abc")),
            "preprocess": json.dumps(Preprocess(8).to_dict()),
        },
    )


def test_two_workers_summed_metrics_and_real_prometheus_scrape(tmp_path):
    prometheus = need("prometheus")
    port, prom_port = free_port(), free_port()
    env = {
        "IMAGE_CLASSIFIER_MODEL_PATH": str(tiny_onnx(tmp_path)),
        "IMAGE_CLASSIFIER_IMAGENET_MODEL_PATH": "",
        "IMAGE_CLASSIFIER_PORT": str(port),
        "IMAGE_CLASSIFIER_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    (tmp_path / "prom").mkdir()
    base = f"http://127.0.0.1:{port}"
    cli = str(Path(sys.executable).parent / "image-classifier")
    with started([cli, "serve"], env, f"{base}/readyz"):
        png = (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00"
            b"\x00\x00:~\x9bU\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00"
            b"\x00\x00\x00IEND\xaeB`\x82"
        )
        with httpx.Client(base_url=base) as client:
            for _ in range(40):  # new connections spread over both workers
                r = client.post(
                    "/v1/classify",
                    files={"file": ("p.png", png, "image/png")},
                    headers={"Connection": "close"},
                )
                assert r.status_code == 200, r.text
        text = httpx.get(f"{base}/metrics").text
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        classified = sum(
            s.value
            for s in samples
            if s.name == "http_requests_total" and s.labels.get("route") == "/v1/classify"
        )
        assert classified == 40, "every worker's requests are in the scrape"

        config = tmp_path / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: 1s}}\nscrape_configs:\n"
            f"  - job_name: image-classifier\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{port}']\n"
        )
        prom_cmd = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path}/tsdb",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        query = f"http://127.0.0.1:{prom_port}/api/v1/query"
        with started(prom_cmd, {}, f"http://127.0.0.1:{prom_port}/-/ready"):
            deadline, value = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                result = httpx.get(
                    query,
                    params={"query": 'sum(http_requests_total{route="/v1/classify",status="200"})'},
                ).json()
                if result["data"]["result"]:
                    value = float(result["data"]["result"][0]["value"][1])
                    break
                time.sleep(0.5)
            assert value == 40.0
            up = httpx.get(query, params={"query": "up"}).json()["data"]["result"]
            assert up[0]["value"][1] == "1"
