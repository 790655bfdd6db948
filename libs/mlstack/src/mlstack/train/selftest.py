"""A tiny training problem that runs fit() end to end in a second: three Gaussian blobs, a
two-layer MLP, augmentation noise from the dataset's own RNG. The tests train it in one process,
in two gloo processes, killed and resumed, and with injected out-of-memory errors; it lives in
the package (not the tests) because spawned and killed processes must import it by name.

    python -m mlstack.train.selftest '{"epochs": 3}'   # prints the final weights' checksum
"""

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mlstack.train import distributed
from mlstack.train.loop import TrainConfig, fit


class Blobs(Dataset):
    def __init__(self, n: int, seed: int, noise: float = 0.0) -> None:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 2)) + np.array([[0, 3], [3, 0], [-3, -3]])[y]
        self.x, self.y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
        self.noise, self.rng = noise, np.random.default_rng(seed + 100)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.noise:  # augmentation drawn from a generator fit() must save and restore
            x = x + torch.from_numpy(self.rng.normal(0, self.noise, 2).astype(np.float32))
        return x, self.y[i]


def toy_model(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3))


def train_toy(options: dict[str, Any]) -> dict[str, Any]:
    """Options: epochs, batch (global), accumulation, dropout, noise, lr, patience, precision,
    state (path), save_every, kill_at (SIGKILL itself at that loss call), oom_above (raise an
    out-of-memory error for micro-batches with more rows)."""
    o = {
        "epochs": 3,
        "batch": 32,
        "lr": 0.05,
        "patience": 10,
        "dropout": 0.0,
        "noise": 0.0,
    } | options
    data, val = Blobs(256, seed=0, noise=o["noise"]), Blobs(128, seed=1)
    model = toy_model(o["dropout"])
    batches = distributed.loader(data, distributed.per_process(o["batch"]), seed=3)
    calls = 0

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == o.get("kill_at"):
            os.kill(os.getpid(), signal.SIGKILL)  # a real crash: no cleanup, no finally
        if o.get("oom_above") and len(batch[0]) > o["oom_above"]:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"val_accuracy": float((m(val.x).argmax(1) == val.y).float().mean())}

    config = TrainConfig(
        epochs=o["epochs"],
        lr=o["lr"],
        patience=o["patience"],
        progress=False,
        device=o.get("device", "cpu"),
        precision=o.get("precision", "auto"),
        accumulation=o.get("accumulation", 1),
        save_every=o.get("save_every", 0),
        compile=o.get("compile", False),
    )
    result = fit(
        model,
        batches,
        loss_fn=loss_fn,
        evaluate=evaluate,
        config=config,
        state_path=o.get("state"),
        rngs=[data.rng],
    )
    return {
        "weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "history": result.history,
        "accumulation": result.accumulation,
        "resumed_at_step": result.resumed_at_step,
        "seconds": result.seconds,
    }


def checksum(weights: dict[str, torch.Tensor]) -> float:
    return float(sum(v.double().abs().sum() for v in weights.values()))


if __name__ == "__main__":
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = train_toy(options)
    if distributed.context().rank != 0:  # under torchrun: one copy of the result
        sys.exit(0)
    if options.get("weights_out"):
        from safetensors.torch import save_file

        save_file(out["weights"], str(Path(options["weights_out"])))
    print(json.dumps({"checksum": checksum(out["weights"]), "history": out["history"]}))
