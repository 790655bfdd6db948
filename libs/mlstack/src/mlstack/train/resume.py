"""What a resumable training state holds, and how fit() writes and reads it.

Model, optimizer, scheduler and gradient-scaler state; the RNG states now and at the start of the
epoch (a run resumed mid-epoch replays the epoch's start to rebuild its batch order, skips the
batches already done, then continues from the saved RNG); epoch, step, running loss, the
early-stopping state (best score, its epoch and weights, epochs without improvement).
"""

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlstack.train.checkpoint import load_state, rng_state, save_state, to_cpu

log = logging.getLogger("mlstack.train")
FORMAT = 1


@dataclass
class Progress:
    best: float
    parts: int = 1  # micro-batches per step
    epoch: int = 1  # the epoch under way (1-based)
    step: int = 0  # optimizer steps done in it
    global_step: int = 0
    loss_sum: float = 0.0  # of this epoch's steps
    best_epoch: int = -1
    stale: int = 0
    stopped_early: bool = False
    finished: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    epoch_rng: dict[str, Any] | None = None


def snapshot(
    path: str | Path, key: dict[str, str], objects: dict[str, Any], run: Progress, rngs
) -> Path:
    counters = {k: v for k, v in asdict(run).items() if k not in ("best_state", "epoch_rng")}
    state = {
        "format": FORMAT,
        "key": key,
        "progress": counters,
        "best_state": to_cpu(run.best_state) if run.best_state is not None else {},
        "epoch_rng": run.epoch_rng,
        "rng": rng_state(rngs),
        "model": to_cpu(objects["model"].state_dict()),
        **{name: objects[name].state_dict() for name in ("optimizer", "scheduler", "scaler")},
    }
    return save_state(state, path)


def restore(
    path: str | Path, key: dict[str, str], objects: dict[str, Any], fresh: Progress
) -> tuple[Progress, dict[str, Any] | None]:
    """Loads a saved state into `objects`; returns its progress and the RNG state to continue
    from. A state from another configuration (or format) is left alone: training starts afresh."""
    saved = load_state(path)
    if saved.get("format") != FORMAT or saved.get("key") != key:
        log.warning("%s is from another configuration: not resuming from it", path)
        return fresh, None
    for name in ("model", "optimizer", "scheduler", "scaler"):
        objects[name].load_state_dict(saved[name])
    run = Progress(**saved["progress"])
    run.best_state = saved["best_state"] or None
    run.epoch_rng = saved["epoch_rng"]
    log.info("resuming %s at epoch %d, step %d", path, run.epoch, run.step)
    return run, saved["rng"]
