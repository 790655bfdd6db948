"""ONNX quantization (dynamic INT8, static INT8 with calibration, FP16) and a side-by-side
report."""

from mlstack.quantize.compare import Variant, compare_variants, onnx_variant, torch_variant
from mlstack.quantize.guided import GuidedResult, quantize_dynamic_guided
from mlstack.quantize.onnx import (
    convert_fp16,
    optimize_transformer,
    quantize_dynamic_int8,
    quantize_static_int8,
)

__all__ = [
    "GuidedResult",
    "Variant",
    "compare_variants",
    "convert_fp16",
    "onnx_variant",
    "optimize_transformer",
    "quantize_dynamic_guided",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "torch_variant",
]
