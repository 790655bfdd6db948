"""The README's distillation rows, from reports/image_classifier/distill.json (`dvc repro
ic_distill`); results_table.py renders them under the image classifier's table."""

import json
from pathlib import Path

DISTILL = Path("reports/image_classifier/distill.json")

LABELS = {
    "teacher_torch_fp32": "teacher {teacher}, PyTorch fp32",
    "teacher_onnx_fp32": "teacher {teacher}, ONNX fp32",
    "teacher_onnx_fp16": "teacher {teacher}, ONNX FP16",
    "teacher_onnx_int8": "teacher {teacher}, ONNX INT8",
    "student_onnx_fp32": "**student, distilled**, ONNX fp32",
    "student_alone_onnx_fp32": "student trained alone, ONNX fp32",
}


def distill_rows(r: dict) -> list[str]:
    """The speed-and-quality rows of the teacher and both students (one measuring run), then a
    sentence comparing the distilled student with the teacher and with the student alone."""
    v, b, chosen = r["variants"], r["batch_size"], r["chosen"]
    params = r["parameters"]
    lines = [
        f"Distillation (`reports/image_classifier/distill.json`): the {r['teacher']} teacher "
        f"teaches a CNN of {params['student']:,} parameters (alpha {chosen['alpha']:g}, "
        f"temperature {chosen['temperature']:g}, picked on validation); the same CNN, recipe and "
        f"seed trained without the teacher is the baseline. Test split ({r['samples']} images), "
        f"{r['threads']} threads, one measuring run:",
        "",
        f"| model | size | latency b1 p50 | images/s b{b} | test acc | agrees with teacher |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in LABELS.items():
        if key in v:
            x = v[key]
            lines.append(
                f"| {label.format(teacher=r['teacher'])} | {x['size_bytes'] / 1e6:.2f} MB "
                f"| {x['latency_ms_p50']:.2f} ms | {x['throughput_per_s']:.0f} "
                f"| {x['accuracy']:.2%} | {x['agreement_with_teacher']:.2%} |"
            )
    s, alone, t = v["student_onnx_fp32"], v["student_alone_onnx_fp32"], v["teacher_onnx_fp32"]
    gain = (s["accuracy"] - alone["accuracy"]) * 100
    images = round((s["accuracy"] - alone["accuracy"]) * r["samples"])
    lines += [
        "",
        f"The distilled student: {s['accuracy']:.2%} test accuracy against {alone['accuracy']:.2%} "
        f"for the student alone ({gain:+.1f} points, {images:+d} of {r['samples']} images) and "
        f"{t['accuracy']:.2%} for the teacher; "
        f"{t['size_bytes'] / s['size_bytes']:.0f}x smaller and "
        f"{t['latency_ms_p50'] / s['latency_ms_p50']:.1f}x faster at batch 1 than the teacher "
        "in the same runtime (ONNX fp32).",
    ]
    return lines


def distillation() -> list[str]:
    """The rows, or nothing where the stage has not run on this machine."""
    return distill_rows(json.loads(DISTILL.read_text())) if DISTILL.exists() else []
