"""What a shadow challenger costs the champion: the image classifier's p50/p99 latency under the
same closed-loop load without a shadow, with one on every request (its thread at nice 10, the
default), and with one at the champion's own priority (nice 0), side by side.

Both models are the tiny test classifier with two 3x3 convolutions in front (`--conv` channels at
`--image-size`; 64 at 128 px is ~8 ms an image on one core), so the challenger costs as much CPU
as the champion: the worst case of a same-sized challenger on every request. One service
process, the load generator on the same cores; the settings are interleaved over `--rounds`
and the summary takes the median round, to spread a shared machine's noise evenly. Writes
reports/shadow.json.

    python benchmarks/bench_shadow.py --seconds 10 --clients 4
"""

import asyncio
import base64
import io
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

app = typer.Typer(add_completion=False)
SETTINGS = {"off": None, "shadow": 10, "shadow_nice0": 0}  # name -> shadow thread's nice value


def images(side: int, n: int = 16) -> list[dict]:
    from PIL import Image

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
        bodies.append({"images": [base64.b64encode(buf.getvalue()).decode()]})
    return bodies


def shadow_counts(metrics: str) -> dict[str, int]:
    pattern = r'shadow_requests_total\{[^}]*outcome="(\w+)"\} ([\d.e+]+)'
    return {k: int(float(v)) for k, v in re.findall(pattern, metrics)}


def run_one(name: str, nice: int | None, folder: Path, bodies, clients: int, seconds: float):
    import httpx

    from mlstack.loadtest import http_load, serve_process
    from mlstack.testing import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "IMAGE_CLASSIFIER_MODEL_PATH": str(folder / "digits.onnx"),
        "IMAGE_CLASSIFIER_IMAGENET_MODEL_PATH": str(folder / "none.onnx"),
        "IMAGE_CLASSIFIER_ONNX_THREADS": "1",
        "IMAGE_CLASSIFIER_MONITOR_DIR": str(folder / f"log-{name}"),  # logging on in every run
    }
    if nice is not None:
        env |= {
            "IMAGE_CLASSIFIER_SHADOW_MODEL": str(folder / "digits-1.onnx"),
            "IMAGE_CLASSIFIER_SHADOW_NICE": str(nice),
        }
    cmd = [sys.executable, "-m", "uvicorn", "image_classifier.service:app_factory", "--factory",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with serve_process(cmd, env, url):
        asyncio.run(http_load(url, "/v1/classify", bodies, clients=clients, seconds=1))  # warm
        result = asyncio.run(
            http_load(url, "/v1/classify", bodies, clients=clients, seconds=seconds)
        )
        result["shadow"] = shadow_counts(httpx.get(f"{url}/metrics").text)
    return result


@app.command()
def main(
    seconds: Annotated[float, typer.Option(help="Load per setting and round.")] = 10.0,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent closed-loop clients.")] = 4,
    rounds: Annotated[int, typer.Option(min=1)] = 2,
    conv: Annotated[int, typer.Option(min=1, help="Convolution channels of both models.")] = 64,
    image_size: Annotated[int, typer.Option(min=8)] = 128,
    out: Path = Path("reports/shadow.json"),
) -> None:
    from image_classifier.testing import tiny_onnx

    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny_onnx(folder, image_size=image_size, conv=conv)
        tiny_onnx(folder, image_size=image_size, conv=conv, seed=1)
        bodies = images(image_size)
        for _ in range(rounds):
            for name, nice in SETTINGS.items():
                runs[name].append(run_one(name, nice, folder, bodies, clients, seconds))

    def median(name: str, key: str) -> float:
        # The median over rounds: one round hit by another job on a shared machine moves a mean.
        values = [r["latency_ms"][key] if key != "rps" else r["requests_per_s"] for r in runs[name]]
        return round(float(np.median(values)), 2)

    summary = {
        name: {"p50_ms": median(name, "p50"), "p99_ms": median(name, "p99"),
               "rps": median(name, "rps")}
        for name in SETTINGS
    }  # fmt: skip
    for name in ("shadow", "shadow_nice0"):
        s, off = summary[name], summary["off"]
        s["p50_delta_ms"] = round(s["p50_ms"] - off["p50_ms"], 2)
        s["p99_delta_ms"] = round(s["p99_ms"] - off["p99_ms"], 2)
    report = {
        "clients": clients, "seconds": seconds, "rounds": rounds, "conv": conv,
        "image_size": image_size, "summary": summary, "runs": runs,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{clients} clients, {seconds:g} s x {rounds} rounds, conv {conv} @ {image_size}px")
    print(f"{'setting':<14}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'d p50':>8}{'d p99':>8}  shadow")
    for name, s in summary.items():
        shadow = runs[name][-1]["shadow"]
        print(
            f"{name:<14}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['rps']:>8.1f}"
            f"{s.get('p50_delta_ms', 0):>8.2f}{s.get('p99_delta_ms', 0):>8.2f}  {shadow or '-'}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    app()
