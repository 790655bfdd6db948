"""Export a torch module to ONNX and prove the export computes what the module computes."""

import hashlib
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ParityError(AssertionError):
    """The ONNX model disagrees with torch beyond the tolerance."""


@dataclass
class ParityReport:
    samples: int
    max_abs_diff: float
    top1_agreement: float
    atol: float
    min_top1: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.atol and self.top1_agreement >= self.min_top1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(source_model: str, params: dict[str, Any]) -> dict[str, str]:
    """What to stamp into the ONNX file: where it came from and with which parameters."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return {
        "source_model": source_model,
        "git_commit": git_commit(),
        "params_hash": hashlib.sha256(blob).hexdigest()[:16],
        "params": json.dumps(params, sort_keys=True, default=str),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_onnx(
    module,
    example_inputs: dict[str, Any],
    path: str | Path,
    *,
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    metadata: dict[str, str] | None = None,
    opset: int = 17,
) -> Path:
    """Exports `module(*example_inputs.values())` to one `.onnx` file (no external data).

    `dynamic_axes` names the free axes, e.g. `{"pixels": {0: "batch"}, "logits": {0: "batch"}}`.
    Uses the TorchScript exporter: as exact as the dynamo one for these models and 10x faster.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    with torch.inference_mode():
        torch.onnx.export(
            module,
            tuple(example_inputs.values()),
            str(path),
            input_names=list(example_inputs),
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    if metadata:
        write_metadata(model, metadata)
    onnx.save(model, str(path))
    return path


def write_metadata(model, metadata: dict[str, str]) -> None:
    import onnx

    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(value)))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The custom metadata of an ONNX file, read through ONNX Runtime (no torch needed)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def check_parity(
    module,
    onnx_path: str | Path,
    inputs: dict[str, np.ndarray],
    *,
    atol: float = 1e-4,
    min_top1: float = 1.0,
    batch_size: int = 64,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Runs torch and ONNX Runtime on the same real inputs and compares the first output.

    Reports the max absolute difference and the share of rows whose arg-max (top-1) agrees;
    raises `ParityError` past `atol` or below `min_top1` unless `raise_on_failure=False`.
    """
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    n = len(next(iter(inputs.values())))
    max_diff, agree = 0.0, 0
    module = module.eval()
    for start in range(0, n, batch_size):
        chunk = {k: v[start : start + batch_size] for k, v in inputs.items()}
        with torch.inference_mode():
            expected = module(*(torch.from_numpy(v) for v in chunk.values()))
        expected = (expected[0] if isinstance(expected, tuple | list) else expected).numpy()
        got = session.run(None, chunk)[0]
        max_diff = max(max_diff, float(np.abs(expected - got).max()))
        agree += int((expected.argmax(-1) == got.argmax(-1)).reshape(len(got), -1).all(1).sum())
    report = ParityReport(n, max_diff, agree / n, atol, min_top1)
    if raise_on_failure and not report.passed:
        raise ParityError(
            f"ONNX parity failed on {n} samples: max |diff| {max_diff:.3g} (atol {atol:g}), "
            f"top-1 agreement {report.top1_agreement:.4f} (min {min_top1:g})"
        )
    return report
