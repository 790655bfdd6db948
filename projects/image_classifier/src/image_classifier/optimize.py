"""Quantize stage: static INT8 with calibration, a torch fp32 / ONNX fp32 / ONNX INT8 report
(size, latency, throughput, accuracy), and a magnitude-pruning sparsity-vs-accuracy curve."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from image_classifier.data import read_split
from image_classifier.dataset import ImageDataset
from image_classifier.export import INPUT, load_trained
from image_classifier.transforms import Preprocess
from mlstack.export.onnx import write_metadata
from mlstack.quantize import compare_variants, onnx_variant, quantize_static_int8, torch_variant
from mlstack.quantize.onnx import first_node


def _arrays(data_dir: Path, split: str, card: dict) -> tuple[np.ndarray, np.ndarray]:
    ds = ImageDataset(
        read_split(data_dir, split), card["labels"], Preprocess.from_dict(card["preprocess"])
    )
    return ds.arrays()


def quantize_model(model_dir: Path, data_dir: Path, report_dir: Path, params: dict) -> dict:
    import onnx

    _, card = load_trained(model_dir)
    calib_x, _ = _arrays(data_dir, "train", card)
    rng = np.random.default_rng(0)
    calib_x = calib_x[rng.permutation(len(calib_x))[: params["calibration_samples"]]]
    int8_path = model_dir / "model.int8.onnx"
    batches = ({INPUT: calib_x[i : i + 32]} for i in range(0, len(calib_x), 32))
    fp32 = model_dir / "model.onnx"
    keep = [first_node(fp32)] if params["keep_stem_fp32"] else []
    quantize_static_int8(
        fp32, int8_path, batches, per_channel=params["per_channel"], keep_fp32=keep
    )
    # carry the serving metadata (labels, preprocessing, version) over to the quantized file
    meta = {p.key: p.value for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    quantized = onnx.load(str(int8_path))
    scheme = ("per-channel" if params["per_channel"] else "per-tensor") + (
        ", stem fp32" if keep else ""
    )
    write_metadata(quantized, {**meta, "quantization": f"static-int8-qdq-{scheme}"})
    onnx.save(quantized, str(int8_path))

    test_x, test_y = _arrays(data_dir, "test", card)
    threads = params["threads"]
    variants = build_variants(model_dir, threads)
    report = compare_variants(
        variants,
        test_x,
        lambda logits: float((logits.argmax(1) == test_y).mean()),
        metric="accuracy",
        threads=threads,
        batch_size=params["batch_size"],
        latency_runs=params["latency_runs"],
        out=report_dir / "quantize.json",
        progress=lambda msg: print(msg, flush=True),
    )
    report["pruning"] = pruning_curve(
        model_dir, test_x, test_y, params["prune_sparsities"], report_dir
    )
    (report_dir / "quantize.json").write_text(json.dumps(report, indent=2))
    return report


def build_variants(model_dir: Path, threads: int) -> list:
    """torch fp32 (eager), ONNX fp32 and ONNX INT8 of one trained model, same thread count."""
    model, _ = load_trained(model_dir)
    return [
        torch_variant(
            "torch_fp32",
            model,
            threads=threads,
            size_bytes=(model_dir / "model.safetensors").stat().st_size,
        ),
        onnx_variant("onnx_fp32", model_dir / "model.onnx", threads=threads),
        onnx_variant("onnx_int8", model_dir / "model.int8.onnx", threads=threads),
    ]


def pruning_curve(
    model_dir: Path, x: np.ndarray, y: np.ndarray, sparsities: list[float], report_dir: Path
) -> list[dict[str, float]]:
    """Global L1 magnitude pruning of conv/linear weights, no fine-tuning: accuracy per sparsity."""
    from torch.nn.utils import prune

    from image_classifier.train import predict_logits

    curve = []
    for sparsity in sparsities:
        model, _ = load_trained(model_dir)
        layers = [
            (m, "weight")
            for m in model.modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        ]
        if sparsity > 0:
            prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)
        accuracy = float((predict_logits(model, x).argmax(1) == y).mean())
        curve.append({"sparsity": sparsity, "accuracy": accuracy})
    with (report_dir / "pruning.csv").open("w") as f:
        f.write("sparsity,accuracy\n")
        f.writelines(f"{p['sparsity']},{p['accuracy']:.4f}\n" for p in curve)
    _plot_curve(curve, report_dir / "pruning.png")
    return curve


def _plot_curve(curve: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p["sparsity"] for p in curve], [p["accuracy"] for p in curve], "o-")
    ax.set(
        xlabel="sparsity (share of weights zeroed)",
        ylabel="test accuracy",
        title="Magnitude pruning, no fine-tuning",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
