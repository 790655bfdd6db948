"""The distill stage's speed-and-quality report and the stage itself: the teacher, its ONNX
FP16/INT8 variants and the two students measured by one `compare_variants` run."""

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from image_classifier.dataset import ImageDataset
from image_classifier.distill import DistillConfig, distill
from image_classifier.export import load_trained
from image_classifier.splits import read_split
from image_classifier.transforms import Preprocess


def _predict(variant, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [variant.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def speed_and_quality(
    cfg: DistillConfig,
    data_dir: Path,
    model_root: Path,
    *,
    threads: int,
    batch_size: int,
    latency_runs: int,
    min_seconds: float = 2.0,
) -> dict[str, Any]:
    """One `compare_variants` run (same threads, warm-up, inputs) over the teacher (torch fp32,
    the reference as in quantize.json; ONNX fp32, FP16, and the INT8 ic_quantize wrote) and the
    two students (ONNX fp32): size, latency, throughput, test accuracy, agreement with the
    teacher (share of test images where the top-1 matches the torch fp32 teacher's)."""
    from mlstack.quantize import compare_variants, convert_fp16, onnx_variant, torch_variant

    teacher_dir = model_root / cfg.teacher
    teacher, card = load_trained(teacher_dir)
    preprocess = Preprocess.from_dict(card["preprocess"])
    x, y = ImageDataset(read_split(data_dir, "test"), card["labels"], preprocess).arrays()
    with tempfile.TemporaryDirectory() as tmp:
        # FP16 is measured, not shipped: on CPU it only halves the file (it is a GPU format)
        fp16 = convert_fp16(teacher_dir / "model.onnx", Path(tmp) / "model.fp16.onnx")
        onnx_files = {
            "teacher_onnx_fp32": teacher_dir / "model.onnx",
            "teacher_onnx_fp16": fp16,
            "teacher_onnx_int8": teacher_dir / "model.int8.onnx",
            "student_alone_onnx_fp32": model_root / "student_alone" / "model.onnx",
            "student_onnx_fp32": model_root / "student" / "model.onnx",
        }
        size = (teacher_dir / "model.safetensors").stat().st_size
        variants = [torch_variant("teacher_torch_fp32", teacher, threads=threads, size_bytes=size)]
        variants += [
            onnx_variant(name, path, threads=threads)
            for name, path in onnx_files.items()
            if path.exists()  # the INT8 file is ic_quantize's (a dependency of ic_distill)
        ]
        report = compare_variants(
            variants,
            x,
            lambda logits: float((logits.argmax(1) == y).mean()),
            metric="accuracy",
            threads=threads,
            batch_size=batch_size,
            latency_runs=latency_runs,
            min_seconds=min_seconds,
            progress=lambda msg: print(msg, flush=True),
        )
        reference = _predict(variants[0], x, batch_size).argmax(1)
        for variant in variants:
            agreement = (_predict(variant, x, batch_size).argmax(1) == reference).mean()
            report["variants"][variant.name]["agreement_with_teacher"] = float(agreement)
    return report


def run_stage(
    cfg: DistillConfig, data_dir: Path, model_root: Path, out: Path, quantize: dict[str, Any]
) -> dict[str, Any]:
    """The ic_distill stage: train, pick, export, measure; writes `out` (DVC metrics)."""
    result = distill(cfg, data_dir, model_root)
    report = speed_and_quality(
        cfg,
        data_dir,
        model_root,
        threads=quantize["threads"],
        batch_size=quantize["batch_size"],
        latency_runs=quantize["latency_runs"],
    )
    v = report["variants"]
    cards = {
        n: json.loads((model_root / n / "card.json").read_text())
        for n in ("student", "student_alone")
    }
    summary = {"teacher_accuracy": v["teacher_torch_fp32"]["accuracy"]}
    for name in ("student", "student_alone"):
        s = v[f"{name}_onnx_fp32"]
        summary |= {
            f"{name}_accuracy": s["accuracy"],
            f"{name}_agreement": s["agreement_with_teacher"],
            f"{name}_val_accuracy": cards[name]["val_accuracy"],
            f"{name}_size_mb": s["size_bytes"] / 1e6,
            f"{name}_latency_ms_p50": s["latency_ms_p50"],
        }
    full = {
        "teacher": cfg.teacher,
        "summary": summary,
        **result,
        "parameters": {n: c["parameters"] for n, c in cards.items()},
        **report,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(full, indent=2))
    return full
