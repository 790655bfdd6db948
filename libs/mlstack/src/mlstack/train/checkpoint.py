"""Weights as safetensors; the full training state (for resuming) as one file written atomically.

The training state holds tensors, numbers, strings, lists and dicts only, and is read back with
`torch.load(weights_only=True)`, which refuses to build arbitrary Python objects: a checkpoint
file cannot run code when loaded.
"""

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

Generator = np.random.Generator | torch.Generator


def save_weights(model: nn.Module, path: str | Path) -> Path:
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    tmp.replace(path)
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Loads safetensors weights (never pickle) into an already-built model."""
    from safetensors.torch import load_model

    load_model(model, str(path))
    return model


def rng_state(generators: Sequence[Generator] = ()) -> dict[str, Any]:
    """Every random stream a step can draw from: Python, NumPy, torch (CPU and CUDA), and the
    caller's own generators (a dataset's augmentation RNG, say)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [
            g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
            for g in generators
        ],
    }


def set_rng_state(state: dict[str, Any], generators: Sequence[Generator] = ()) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for g, saved in zip(generators, state["generators"], strict=True):
        if isinstance(g, torch.Generator):
            g.set_state(saved)
        else:
            g.bit_generator.state = saved


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Writes to a temporary file, flushes it to disk, then renames it over `path`: a process
    killed mid-write leaves the previous checkpoint intact, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
