"""Run model variants (torch fp32, ONNX fp32, ONNX INT8...) on the same data, side by side.

Every variant gets the same thread count, the same inputs and the same quality function, so the
ratios in the report are fair. Latency is batch 1 (p50/p95); throughput is at `batch_size`.
"""

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Inputs = np.ndarray | Mapping[str, np.ndarray]


@dataclass
class Variant:
    name: str
    predict: Callable[[Inputs], np.ndarray]
    size_bytes: int


def _rows(inputs: Inputs) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, Mapping) else len(inputs)


def _take(inputs: Inputs, start: int, stop: int) -> Inputs:
    if isinstance(inputs, Mapping):
        return {k: v[start:stop] for k, v in inputs.items()}
    return inputs[start:stop]


def onnx_variant(name: str, path: str | Path, *, threads: int) -> Variant:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def predict(x: Inputs) -> np.ndarray:
        feed = dict(x) if isinstance(x, Mapping) else {input_name: x}
        return session.run(None, feed)[0]

    return Variant(name, predict, Path(path).stat().st_size)


def torch_variant(name: str, module, *, threads: int, size_bytes: int | None = None) -> Variant:
    import torch

    torch.set_num_threads(threads)
    module = module.eval()
    if size_bytes is None:
        size_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())

    def predict(x: Inputs) -> np.ndarray:
        with torch.inference_mode():
            if isinstance(x, Mapping):
                out = module(*(torch.from_numpy(v) for v in x.values()))
            else:
                out = module(torch.from_numpy(x))
        return (out[0] if isinstance(out, tuple | list) else out).numpy()

    return Variant(name, predict, size_bytes)


def _predict_all(variant: Variant, inputs: Inputs, batch_size: int) -> np.ndarray:
    n = _rows(inputs)
    return np.concatenate(
        [variant.predict(_take(inputs, i, i + batch_size)) for i in range(0, n, batch_size)]
    )


def _latency_ms(variant: Variant, inputs: Inputs, runs: int, warmup: int) -> list[float]:
    n = _rows(inputs)
    for i in range(warmup):
        variant.predict(_take(inputs, i % n, i % n + 1))
    times = []
    for i in range(runs):
        sample = _take(inputs, i % n, i % n + 1)
        start = time.perf_counter()
        variant.predict(sample)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _throughput(variant: Variant, inputs: Inputs, batch_size: int, min_seconds: float) -> float:
    n = _rows(inputs)
    batches = [_take(inputs, i, i + batch_size) for i in range(0, n - batch_size + 1, batch_size)]
    batches = batches or [inputs]
    variant.predict(batches[0])  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        for batch in batches:
            variant.predict(batch)
            done += _rows(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def compare_variants(
    variants: list[Variant],
    inputs: Inputs,
    quality: Callable[[np.ndarray], float],
    *,
    metric: str,
    threads: int,
    batch_size: int = 32,
    latency_runs: int = 200,
    warmup: int = 20,
    min_seconds: float = 2.0,
    out: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measures every variant; the first one is the reference for deltas and speed-ups."""
    report: dict[str, Any] = {
        "metric": metric,
        "threads": threads,
        "batch_size": batch_size,
        "samples": _rows(inputs),
        "latency_runs": latency_runs,
        "variants": {},
    }
    for variant in variants:
        if progress:
            progress(f"measuring {variant.name}")
        times = _latency_ms(variant, inputs, latency_runs, warmup)
        report["variants"][variant.name] = {
            "size_bytes": variant.size_bytes,
            "latency_ms_p50": float(np.percentile(times, 50)),
            "latency_ms_p95": float(np.percentile(times, 95)),
            "throughput_per_s": _throughput(variant, inputs, batch_size, min_seconds),
            metric: float(quality(_predict_all(variant, inputs, batch_size))),
        }
    ref = report["variants"][variants[0].name]
    for entry in report["variants"].values():
        entry[f"{metric}_delta"] = entry[metric] - ref[metric]
        entry["speedup_batch1"] = ref["latency_ms_p50"] / entry["latency_ms_p50"]
        entry[f"speedup_batch{batch_size}"] = entry["throughput_per_s"] / ref["throughput_per_s"]
        entry["size_ratio"] = entry["size_bytes"] / ref["size_bytes"]
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))
    return report
