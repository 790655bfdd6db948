"""Dynamic INT8 with a quality floor: the layers that hurt most stay fp32.

Per-tensor activation ranges make a few layers (outlier-heavy projections) cost most of the
error. We measure each layer's damage alone, then keep the worst ones in fp32, one at a time,
until the caller's quality score reaches the floor: mixed precision chosen by measurement.
"""

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlstack.quantize.onnx import quantize_dynamic_int8

log = logging.getLogger(__name__)


@dataclass
class GuidedResult:
    score: float
    target: float
    quantized_nodes: int
    kept_fp32: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # score with that node alone INT8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantizable_nodes(path: str | Path, op_types: tuple[str, ...]) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in op_types]


def quantize_dynamic_guided(
    src: str | Path,
    dst: str | Path,
    score: Callable[[Path], float],
    *,
    target: float,
    op_types: tuple[str, ...] = ("MatMul", "Attention"),
    max_fp32: int = 8,
) -> GuidedResult:
    """Writes the INT8 model to `dst`; `score(path)` rates a candidate (higher is better, e.g.
    the worst cosine similarity to fp32 embeddings on calibration texts, never the test set)."""
    nodes = quantizable_nodes(src, op_types)

    def build(path: Path, exclude: list[str]) -> float:
        quantize_dynamic_int8(src, path, per_channel=True, op_types=op_types, exclude=exclude)
        return score(path)

    result = GuidedResult(build(Path(dst), []), target, len(nodes))
    log.info("all %d nodes INT8: score %.5f (target %.5f)", len(nodes), result.score, target)
    if result.score >= target:
        return result
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        for node in nodes:
            result.sensitivity[node] = build(probe, [n for n in nodes if n != node])
    for node in sorted(nodes, key=result.sensitivity.__getitem__)[:max_fp32]:
        result.kept_fp32.append(node)
        result.score = build(Path(dst), result.kept_fp32)
        log.info("kept %s in fp32: score %.5f", node, result.score)
        if result.score >= target:
            break
    result.quantized_nodes = len(nodes) - len(result.kept_fp32)
    return result
