"""Which device and which numeric precision a run trains in.

Order of precedence: the environment (`MLSTACK_DEVICE`, `MLSTACK_PRECISION`: an operator's
override for one invocation, without editing tracked parameters), then the value passed in
(params.yaml), then `auto`.

Precision `auto` means bf16 autocast on a CUDA GPU that supports it, fp16 with a gradient scaler
on older GPUs, and fp32 on the CPU. bf16 autocast runs on CPUs too and is available explicitly
(`precision: bf16`): it pays off only where the CPU has bf16 matrix units (AMX, AVX512-BF16),
and its 8-bit mantissa changes results, so it is not the CPU default (figures: docs/training.md).
"""

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

DEVICE_ENV = "MLSTACK_DEVICE"
PRECISION_ENV = "MLSTACK_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: CUDA if present (GPU `local_rank` under torchrun), else CPU; `cuda` takes the
    process's GPU the same way; `cpu`, `cuda:1` etc. are taken as they are."""
    spec = os.environ.get(DEVICE_ENV) or spec or "auto"
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(spec)


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        # fp16's 5-bit exponent underflows small gradients: scale the loss up, unscale before
        # the optimizer step. bf16 has fp32's exponent range and needs none.
        return self.name == "fp16"

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def resolve_precision(spec: str | None, device: torch.device) -> Precision:
    name = os.environ.get(PRECISION_ENV) or spec or "auto"
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs a CUDA GPU; on the CPU use bf16 or fp32")
    return Precision(name, device.type)


def run_options(section: dict | None = None, params_file: str | Path = "params.yaml") -> dict:
    """`device`, `precision` and `compile` for a TrainConfig: the stage's own keys, else
    params.yaml's `training` section, else `auto`/`auto`/off. MLSTACK_DEVICE and
    MLSTACK_PRECISION still override both when fit() resolves them."""
    import yaml

    path = Path(params_file)
    shared = (yaml.safe_load(path.read_text()) or {}).get("training") if path.exists() else None
    merged = {"device": "auto", "precision": "auto", "compile": False} | (shared or {})
    merged |= section or {}
    return {k: merged[k] for k in ("device", "precision", "compile")}
