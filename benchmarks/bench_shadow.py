"""What a shadow challenger costs the champion: the image classifier's p50/p99 latency under the
same closed-loop load without a shadow, with one on every request (its thread at nice 10, the
default), and with one at the champion's own priority (nice 0), side by side.

Both models are the tiny test classifier with two 3x3 convolutions in front (`--conv` channels at
`--image-size`; 64 at 128 px is ~8 ms an image on one core), so the challenger costs as much CPU
as the champion: the worst case of a same-sized challenger on every request.

On a shared machine the load from other jobs swings from one second to the next by more than
the effect measured, so the three settings are not separate runs: one service (in this process)
switches between them every `--phase-s` seconds while a load generator (another process) keeps
the same load on it throughout, and each request counts for the setting it ran under (requests
started within `--settle-s` of a switch, or still running at the next one, are left out).
Writes reports/shadow.json.

    python benchmarks/bench_shadow.py --seconds 60 --clients 4
"""

import asyncio
import base64
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

app = typer.Typer(add_completion=False)
SETTINGS = ("off", "shadow", "shadow_nice0")


def images(side: int, n: int = 16) -> list[dict]:
    from PIL import Image

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
        bodies.append({"images": [base64.b64encode(buf.getvalue()).decode()]})
    return bodies


async def closed_loop(url: str, bodies: list[dict], clients: int, seconds: float) -> list:
    """`clients` loops POSTing `bodies`; every request as (start, end, status), monotonic clock
    (system-wide on Linux, so comparable with the service process's phase times)."""
    import httpx

    samples, stop = [], time.monotonic() + seconds

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            i = worker
            while time.monotonic() < stop:
                start = time.monotonic()
                r = await http.post("/v1/classify", json=bodies[i % len(bodies)])
                samples.append((start, time.monotonic(), r.status_code))
                i += clients

    await asyncio.gather(*(client(w) for w in range(clients)))
    return samples


def summarize(samples: list, phases: list, settle_s: float) -> dict:
    latencies: dict[str, list[float]] = {name: [] for name in SETTINGS}
    errors = 0
    for start, end, status in samples:
        errors += status != 200
        for t0, t1, name in phases:
            if t0 + settle_s <= start and end <= t1:
                latencies[name].append((end - start) * 1000)
                break
    summary = {"errors": errors}
    for name, values in latencies.items():
        a = np.asarray(values)
        summary[name] = {
            "requests": len(a),
            "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
        }
    for name in ("shadow", "shadow_nice0"):
        s, off = summary[name], summary["off"]
        for p in ("p50", "p99"):
            s[f"{p}_delta_ms"] = round(s[f"{p}_ms"] - off[f"{p}_ms"], 2)
            s[f"{p}_delta_pct"] = round(100 * (s[f"{p}_ms"] / off[f"{p}_ms"] - 1), 1)
    return summary


@app.command()
def main(
    seconds: Annotated[float, typer.Option(help="Length of the load.")] = 60.0,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent closed-loop clients.")] = 4,
    phase_s: Annotated[float, typer.Option(help="Time under one setting before the next.")] = 2.0,
    settle_s: Annotated[
        float, typer.Option(help="Left out after each switch (the last shadow queue drains).")
    ] = 0.5,
    conv: Annotated[int, typer.Option(min=1, help="Convolution channels of both models.")] = 64,
    image_size: Annotated[int, typer.Option(min=8)] = 128,
    out: Path = Path("reports/shadow.json"),
    load_url: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    if load_url is not None:  # the load generator's own process
        samples = asyncio.run(closed_loop(load_url, images(image_size), clients, seconds))
        out.write_text(json.dumps(samples))  # a file, not a pipe: a full pipe would block it
        return

    from image_classifier.service import build_app
    from image_classifier.testing import tiny_onnx, tiny_settings
    from mlstack.serve import Shadow
    from mlstack.testing import live_server

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        challenger = tiny_onnx(folder / "challenger", image_size=image_size, conv=conv, seed=1)
        champion = tiny_onnx(folder / "champion", image_size=image_size, conv=conv)
        settings = tiny_settings(
            folder, model_path=champion, monitor_dir=folder / "log", shadow_model=challenger
        )
        service = build_app(settings)
        with live_server(service) as base:
            deployment = service.state.hub.get()
            shadow = deployment.shadow
            loop = shadow._worker.get_loop()
            nice0 = Shadow(
                shadow.model,
                deployment.model,
                nice=0,
                queue_size=shadow.queue_size,
                inference_log=shadow.inference_log,
            )
            asyncio.run_coroutine_threadsafe(nice0.start(), loop).result()
            modes = {"off": None, "shadow": shadow, "shadow_nice0": nice0}
            cmd = [
                sys.executable,
                __file__,
                "--load-url",
                base,
                "--seconds",
                str(seconds),
                "--clients",
                str(clients),
                "--image-size",
                str(image_size),
                "--out",
                str(folder / "samples.json"),
            ]
            load = subprocess.Popen(cmd)
            phases, i = [], 0
            while load.poll() is None:
                name = SETTINGS[i % len(SETTINGS)]
                deployment.shadow = modes[name]  # one attribute: the next request sees it
                t0 = time.monotonic()
                time.sleep(phase_s)
                phases.append((t0, time.monotonic(), name))
                i += 1
            samples = json.loads((folder / "samples.json").read_text())
            counts = {"shadow": dict(shadow.counts), "shadow_nice0": dict(nice0.counts)}
            asyncio.run_coroutine_threadsafe(nice0.stop(), loop).result()
            deployment.shadow = shadow

    summary = summarize(samples, phases, settle_s)
    report = {
        "clients": clients,
        "seconds": seconds,
        "phase_s": phase_s,
        "settle_s": settle_s,
        "conv": conv,
        "image_size": image_size,
        "summary": summary,
        "shadow": counts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(
        f"{clients} clients, {seconds:g} s, settings switched every {phase_s:g} s, "
        f"conv {conv} @ {image_size}px; {summary['errors']} errors"
    )
    print(f"{'setting':<14}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'d p50':>8}{'d p99':>8}")
    for name in SETTINGS:
        s = summary[name]
        deltas = "".join(
            f"{s[k]:>+7.1f}%" if k in s else f"{'':>8}" for k in ("p50_delta_pct", "p99_delta_pct")
        )
        print(f"{name:<14}{s['requests']:>9}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{deltas}")
    print(f"shadow outcomes: {counts}\nwrote {out}")


if __name__ == "__main__":
    app()
