"""A readable training loop, not a framework: one `fit()` you can read top to bottom.

AdamW, cosine schedule with linear warm-up, gradient clipping, mixed precision on CUDA, early
stopping on a validation metric, the best weights saved as safetensors and restored at the end.
"""

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grad_clip: float | None = 1.0
    patience: int = 5  # epochs without improvement before stopping
    min_delta: float = 0.0
    monitor: str = "val_accuracy"
    mode: str = "max"  # "max" for accuracy-like metrics, "min" for losses
    seed: int = 42
    amp: bool = True  # only where the hardware has it (CUDA); ignored on CPU
    progress: bool = True


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped_early: bool = False
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_with_warmup(optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _improved(score: float, best: float, mode: str, min_delta: float) -> bool:
    return score > best + min_delta if mode == "max" else score < best - min_delta


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    evaluate: Callable[[nn.Module], dict[str, float]],
    config: TrainConfig,
    checkpoint_path: str | Path | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    device: str | torch.device = "cpu",
) -> FitResult:
    """Trains `model` on the parameters that require grad.

    `loss_fn(model, batch)` returns the loss of one batch; `evaluate(model)` returns validation
    metrics including `config.monitor`. Calls `on_epoch_end(epoch, metrics)` (log to MLflow there).
    """
    seed_everything(config.seed)
    device = torch.device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    scheduler = cosine_with_warmup(optimizer, total_steps, int(config.warmup_ratio * total_steps))
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(enabled=use_amp and amp_dtype == torch.float16)

    best = -math.inf if config.mode == "max" else math.inf
    result = FitResult(best_epoch=-1, best_score=best)
    best_state: dict[str, torch.Tensor] | None = None
    stale, start = 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not config.progress,
            mininterval=1.0,
        )
        for batch in bar:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")

        model.eval()
        with torch.inference_mode():
            metrics = {
                "train_loss": total / max(count, 1),
                **evaluate(model),
                "lr": scheduler.get_last_lr()[0],
            }
        result.history.append({"epoch": epoch, **metrics})
        score = metrics[config.monitor]
        if _improved(score, best, config.mode, config.min_delta):
            best, stale = score, 0
            result.best_epoch, result.best_score = epoch, score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if on_epoch_end:
            on_epoch_end(epoch, metrics)
        if config.progress:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            tqdm.write(f"epoch {epoch}: {shown}{' *' if stale == 0 else ''}")
        if stale >= config.patience:
            result.stopped_early = True
            break

    if best_state is not None:
        model.load_state_dict(best_state)
        if checkpoint_path is not None:
            result.checkpoint = save_checkpoint(model, checkpoint_path)
    result.seconds = time.perf_counter() - start
    return result


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Loads safetensors weights (never pickle) into an already-built model."""
    from safetensors.torch import load_model

    load_model(model, str(path))
    return model
