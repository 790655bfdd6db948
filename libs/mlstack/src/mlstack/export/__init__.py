"""Torch -> single-file ONNX with named, dynamic axes, provenance metadata and a parity check."""

from mlstack.export.onnx import (
    ParityError,
    ParityReport,
    check_parity,
    export_onnx,
    provenance,
    read_metadata,
)

__all__ = [
    "ParityError",
    "ParityReport",
    "check_parity",
    "export_onnx",
    "provenance",
    "read_metadata",
]
