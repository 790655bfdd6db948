"""Quantize stage: static INT8 with calibration, a torch fp32 / ONNX fp32 / ONNX INT8 report
(size, latency, throughput, accuracy), and a magnitude-pruning sparsity-vs-accuracy curve."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from image_classifier.dataset import ImageDataset
from image_classifier.export import INPUT, load_trained
from image_classifier.splits import read_split
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
    """INT8 with the scheme chosen on the validation split; every reported figure on test."""
    import onnx

    _, card = load_trained(model_dir)
    calib_x, _ = _arrays(data_dir, "train", card)
    rng = np.random.default_rng(0)
    calib_x = calib_x[rng.permutation(len(calib_x))[: params["calibration_samples"]]]
    int8_path = model_dir / "model.int8.onnx"
    fp32 = model_dir / "model.onnx"
    decision = choose_scheme(fp32, int8_path, calib_x, _arrays(data_dir, "val", card), params)
    # carry the serving metadata (labels, preprocessing, version) over to the quantized file
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    quantized = onnx.load(str(int8_path))
    scheme = ("per-channel" if params["per_channel"] else "per-tensor") + (
        ", stem fp32" if decision["keep_stem_fp32"] else ""
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
    # which split each figure comes from: the choice on validation, the variants' figures and the
    # pruning curve on test (a choice made on test would make its test figure optimistic)
    report["splits"] = {"decision": "val", "variants": "test", "pruning": "test"}
    report["decision"] = decision
    report["pruning"] = pruning_curve(
        model_dir, test_x, test_y, params["prune_sparsities"], report_dir
    )
    (report_dir / "quantize.json").write_text(json.dumps(report, indent=2))
    return report


def choose_scheme(
    fp32: Path,
    int8_path: Path,
    calib_x: np.ndarray,
    val: tuple[np.ndarray, np.ndarray],
    params: dict,
) -> dict:
    """Writes `int8_path` and says why. `keep_stem_fp32: auto` quantizes both ways and keeps the
    stem conv (raw pixels in) fp32 only if all-INT8 loses more than `max_val_drop` of
    validation accuracy against ONNX fp32; true or false pins it (still scored on validation)."""
    import shutil
    import tempfile

    val_x, val_y = val
    setting = params["keep_stem_fp32"]
    options = [False, True] if setting == "auto" else [bool(setting)]
    fp32_acc = onnx_accuracy(fp32, val_x, val_y, params["threads"])
    val_accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for keep in options:
            path = Path(tmp) / f"stem_fp32_{keep}.onnx"
            batches = ({INPUT: calib_x[i : i + 32]} for i in range(0, len(calib_x), 32))
            stem = [first_node(fp32)] if keep else []
            quantize_static_int8(
                fp32, path, batches, per_channel=params["per_channel"], keep_fp32=stem
            )
            val_accuracy[f"stem_fp32_{keep}".lower()] = onnx_accuracy(
                path, val_x, val_y, params["threads"]
            )
        all_int8 = val_accuracy.get("stem_fp32_false")
        keep = options[0] if len(options) == 1 else fp32_acc - all_int8 > params["max_val_drop"]
        shutil.copy(Path(tmp) / f"stem_fp32_{keep}.onnx", int8_path)
    return {
        "split": "val",
        "setting": setting,
        "max_val_drop": params.get("max_val_drop"),
        "onnx_fp32_val_accuracy": fp32_acc,
        "int8_val_accuracy": val_accuracy,
        "keep_stem_fp32": keep,
    }


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, threads: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [session.run(None, {INPUT: x[i : i + 64]})[0] for i in range(0, len(x), 64)]
    )
    return round(float((logits.argmax(1) == y).mean()), 4)


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
