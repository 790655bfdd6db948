"""The model as ONNX with past key values (optimum's exporter does this best: it wires the
cache inputs and outputs for every architecture it knows), plus an INT8 copy through
mlstack.quantize. Build time only; the server runs the files with plain ONNX Runtime."""

import json
import shutil
from pathlib import Path
from typing import Any

FP32, INT8 = "model.onnx", "model.int8.onnx"


def export(model_dir: Path, out_dir: Path, *, int8: bool = True) -> dict[str, Any]:
    from optimum.exporters.onnx import main_export

    from mlstack.quantize import quantize_dynamic_int8

    if out_dir.exists():
        shutil.rmtree(out_dir)
    main_export(
        str(model_dir),
        output=out_dir,
        task="text-generation-with-past",
        do_validation=False,
        no_post_process=True,
    )
    files = {"fp32": FP32}
    if int8:
        # Per-tensor: ONNX Runtime's per-channel dynamic MatMul turned SmolLM2-135M into noise
        # from the first token (greedy output unrelated to fp32's on every prompt tried), while
        # per-tensor INT8 gives fp32's tokens. The tiny test model does not show the difference.
        quantize_dynamic_int8(
            out_dir / FP32, out_dir / INT8, per_channel=False, op_types=("MatMul",)
        )
        files["int8"] = INT8
    sizes = {k: round((out_dir / f).stat().st_size / 2**20, 1) for k, f in files.items()}
    report = {"source": str(model_dir), "files": files, "size_mb": sizes}
    (out_dir / "export.json").write_text(json.dumps(report, indent=2))
    return report
