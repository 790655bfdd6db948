"""Quantize ONNX models with ONNX Runtime's tools."""

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def quantize_dynamic_int8(
    src: str | Path,
    dst: str | Path,
    *,
    per_channel: bool = False,
    op_types: tuple[str, ...] | None = None,
    exclude: list[str] | None = None,
) -> Path:
    """INT8 weights, activations quantized on the fly: the choice for transformers and MLPs.
    `op_types` limits which ops are quantized, `exclude` names nodes kept in fp32."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=list(op_types) if op_types else None,
        nodes_to_exclude=list(exclude or []),
        # Fused graphs (com.microsoft ops) defeat ONNX shape inference; their tensors are float.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    return Path(dst)


class _Calibration:
    """Adapts an iterable of input dicts to ONNX Runtime's `CalibrationDataReader`."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_static_int8(
    src: str | Path,
    dst: str | Path,
    calibration: Iterable[dict[str, np.ndarray]],
    *,
    per_channel: bool = True,
    quant_format: str = "QDQ",
    preprocess: bool = True,
    keep_fp32: list[str] | None = None,
) -> Path:
    """INT8 weights and activations, with activation ranges calibrated on real inputs: the choice
    for CNNs. `preprocess` runs shape inference and graph fusion first (fails on some
    transformers: then pass False). `keep_fp32` names nodes left unquantized (see `first_node`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration)
    with tempfile.TemporaryDirectory() as tmp:
        model_in = str(src)
        if preprocess:
            model_in = str(Path(tmp) / "preprocessed.onnx")
            quant_pre_process(str(src), model_in, skip_symbolic_shape=True)
        quantize_static(
            model_in,
            str(dst),
            reader,
            quant_format=QuantFormat[quant_format],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_fp32 or []),
        )
    return Path(dst)


def convert_fp16(src: str | Path, dst: str | Path, *, keep_io_types: bool = True) -> Path:
    """FP16 weights and compute (inputs/outputs stay fp32): halves the size; fast on GPUs only."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=keep_io_types)
    onnx.save(model, str(dst))
    return Path(dst)


def optimize_transformer(
    src: str | Path, dst: str | Path, *, model_type: str = "bert", opt_level: int = 1
) -> Path:
    """ONNX Runtime's transformer fusions (attention, layer norm, GELU) saved as a new file:
    the fused graph runs faster and quantizes better than the exporter's one. `model_type` is
    one of onnxruntime.transformers' (bert, gpt2, ...); heads and width are read from the graph."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(str(src), model_type=model_type, opt_level=opt_level)
    model.save_model_to_file(str(dst))
    return Path(dst)


def first_node(path: str | Path, op_type: str = "Conv") -> str:
    """The name of the first node of `op_type`: the stem convolution that sees raw pixels is the
    layer INT8 hurts most, so it is the usual one to keep in fp32."""
    import onnx

    return next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == op_type)
