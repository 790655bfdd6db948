"""A real ONNX export, parity check and quantization of a small CNN."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mlstack.export import ParityError, check_parity, export_onnx, provenance, read_metadata
from mlstack.quantize import (
    compare_variants,
    convert_fp16,
    onnx_variant,
    quantize_dynamic_int8,
    quantize_static_int8,
    torch_variant,
)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, 4)

    def forward(self, pixels):
        return self.head(self.body(pixels))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    path = export_onnx(
        model,
        {"pixels": torch.zeros(1, 3, 16, 16)},
        tmp_path_factory.mktemp("onnx") / "m.onnx",
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        metadata={**provenance("small-cnn", {"lr": 0.1}), "labels": '["a"]'},
    )
    x = np.random.default_rng(0).normal(size=(64, 3, 16, 16)).astype(np.float32)
    return model, path, x


def test_export_is_single_file_with_named_dynamic_axes_and_metadata(exported):
    _, path, x = exported
    assert not list(path.parent.glob("*.data"))  # no external-data side file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("pixels", "logits")
    assert inp.shape[0] == "batch"
    assert session.run(None, {"pixels": x[:5]})[0].shape == (5, 4)  # another batch size works
    meta = read_metadata(path)
    assert meta["source_model"] == "small-cnn" and len(meta["params_hash"]) == 16
    assert {"git_commit", "exported_at"} <= set(meta) and json.loads(meta["params"]) == {"lr": 0.1}


def test_parity_passes_and_fails_loudly(exported):
    model, path, x = exported
    report = check_parity(model, path, {"pixels": x})
    assert report.passed and report.max_abs_diff < 1e-4 and report.top1_agreement == 1.0
    other = SmallCNN().eval()  # different weights: the check must catch it
    with pytest.raises(ParityError, match="max \\|diff\\|"):
        check_parity(other, path, {"pixels": x})


def test_quantize_variants_and_report(exported, tmp_path):
    model, path, x = exported
    static = quantize_static_int8(
        path, tmp_path / "s.onnx", ({"pixels": x[i : i + 16]} for i in range(0, 64, 16))
    )
    dynamic = quantize_dynamic_int8(path, tmp_path / "d.onnx")
    fp16 = convert_fp16(path, tmp_path / "h.onnx")
    reference = model(torch.from_numpy(x)).argmax(1).detach().numpy()

    def agreement(logits: np.ndarray) -> float:
        return float((logits.argmax(1) == reference).mean())

    report = compare_variants(
        [
            torch_variant("torch_fp32", model, threads=1),
            onnx_variant("onnx_fp32", path, threads=1),
            onnx_variant("int8_static", static, threads=1),
            onnx_variant("int8_dynamic", dynamic, threads=1),
            onnx_variant("fp16", fp16, threads=1),
        ],
        x,
        agreement,
        metric="agreement",
        threads=1,
        batch_size=16,
        latency_runs=10,
        warmup=2,
        min_seconds=0.05,
        out=tmp_path / "report.json",
    )
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["threads"] == 1 and set(saved["variants"]) == set(report["variants"])
    v = report["variants"]
    assert v["onnx_fp32"]["agreement"] == 1.0 and v["torch_fp32"]["agreement_delta"] == 0.0
    assert v["int8_static"]["agreement"] >= 0.8  # quantized, still mostly the same answers
    assert v["fp16"]["size_bytes"] < v["onnx_fp32"]["size_bytes"]
    for entry in v.values():
        assert entry["latency_ms_p95"] >= entry["latency_ms_p50"] > 0
        assert entry["throughput_per_s"] > 0 and "speedup_batch16" in entry
