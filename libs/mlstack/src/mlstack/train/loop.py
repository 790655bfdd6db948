"""A readable training loop, not a framework: one `fit()` you can read top to bottom.

AdamW, cosine schedule with linear warm-up, gradient clipping, early stopping on a validation
metric, the best weights saved as safetensors and restored at the end. The pieces around it, one
concern each: device.py (device and precision), distributed.py (DDP under torchrun),
batching.py (gradient accumulation, out-of-memory back-off), checkpoint.py (weights, resumable
training state), resume.py (what a training state holds). docs/training.md shows how to use them.
"""

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mlstack.train import distributed
from mlstack.train.batching import is_out_of_memory, rows, split, to_device
from mlstack.train.checkpoint import (
    Generator,
    load_weights,
    rng_state,
    save_weights,
    set_rng_state,
)
from mlstack.train.device import resolve_device, resolve_precision
from mlstack.train.resume import Progress, restore, snapshot

log = logging.getLogger("mlstack.train")

# the names existing callers import
save_checkpoint, load_checkpoint = save_weights, load_weights


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
    amp: bool = True  # False forces fp32 whatever `precision` says (callers from before it)
    progress: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N; MLSTACK_DEVICE overrides
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; MLSTACK_PRECISION overrides
    compile: bool = False  # torch.compile the training forward (measured: docs/training.md)
    accumulation: int = 1  # micro-batches per optimizer step and process
    adapt_batch: bool = True  # on CUDA out-of-memory: twice the micro-batches, same global batch
    save_every: int = 0  # optimizer steps between resumable checkpoints; 0: at epoch ends only


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    accumulation: int = 1  # micro-batches per step at the end (more after an out-of-memory)
    resumed_at_step: int | None = None


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
    device: str | torch.device | None = None,
    state_path: str | Path | None = None,
    rngs: Sequence[Generator] = (),
    tag: str = "",
    weigh: Callable[[Any], float] | None = None,
) -> FitResult:
    """Trains `model` on the parameters that require grad.

    `loss_fn(model, batch)` returns the mean loss of a batch (or of a slice of its rows: batches
    are cut into `config.accumulation` micro-batches); `evaluate(model)` returns validation
    metrics including `config.monitor` (rank 0 only). `weigh(batch)` counts what the loss
    averages over when a batch is cut (default: its rows; a per-token mean needs its tokens).
    Calls `on_epoch_end(epoch, metrics)` on rank 0 (log to MLflow there). The loader yields
    this process's batch of each step.

    With `state_path`, the full training state is saved there at every epoch end (and every
    `config.save_every` steps) and a run that finds one with the same config and `tag` resumes
    from it; `rngs` are the caller's own random generators to save with it (a dataset's
    augmentation RNG). Bit-exact resumption needs a loader whose order depends on the epoch
    only (`distributed.loader`) or on the global RNG.
    """
    ctx = distributed.context()
    device = resolve_device(device if device is not None else config.device, ctx.local_rank)
    distributed.init(device)
    precision = resolve_precision(config.precision if config.amp else "fp32", device)
    seed_everything(config.seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    scheduler = cosine_with_warmup(optimizer, total_steps, int(config.warmup_ratio * total_steps))
    scaler = precision.scaler()
    trained = distributed.wrap(model, device)
    forward = torch.compile(trained) if config.compile else trained
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    # the device and precision as resolved (environment overrides included): a state saved in
    # fp32 on a CPU has no scaler state for an fp16 run on a GPU to load
    key = {**vars(config), "progress": None, "tag": tag, "world_size": ctx.world_size}
    key |= {"device_type": device.type, "precision_resolved": precision.name}
    key = {k: str(v) for k, v in key.items()}  # compared as text: a changed run starts afresh
    best = -math.inf if config.mode == "max" else math.inf
    run = Progress(best=best, parts=config.accumulation)
    pending_rng = None
    if state_path is not None and Path(state_path).exists():
        run, pending_rng = restore(state_path, key, objects, run)
    result = FitResult(
        best_epoch=run.best_epoch,
        best_score=run.best,
        history=run.history,
        resumed_at_step=run.global_step if pending_rng else None,
    )
    show = config.progress and ctx.is_main

    def save() -> None:
        if state_path is not None and ctx.is_main:
            snapshot(state_path, key, objects, run, rngs)

    def step(batch: Any) -> float:
        while True:
            try:
                optimizer.zero_grad(set_to_none=True)
                pieces, total = split(batch, run.parts, weigh), 0.0
                for i, (piece, weight) in enumerate(pieces):
                    # DDP all-reduces gradients in backward: only after the last micro-batch
                    last = i == len(pieces) - 1 or not hasattr(trained, "no_sync")
                    with trained.no_sync() if not last else contextlib.nullcontext():
                        with precision.autocast():
                            loss = loss_fn(forward, piece) * weight
                        scaler.scale(loss).backward()
                    total += loss.item()
                return total
            except RuntimeError as error:
                # Not under DDP: one rank retrying alone would leave the others in an all-reduce
                # it never joins (a hang or mismatched collectives).
                if not (config.adapt_batch and ctx.world_size == 1 and is_out_of_memory(error)):
                    raise
                if run.parts >= (rows(batch) or 1):
                    raise
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                run.parts *= 2
                log.warning("out of memory: %d micro-batches per step from now on", run.parts)

    start = time.perf_counter()
    epoch = run.epoch
    while epoch <= config.epochs and not run.finished:
        sampler = getattr(train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if run.step == 0:
            if pending_rng is not None:  # resumed at an epoch boundary: the saved state first,
                set_rng_state(pending_rng, rngs)  # before iter() draws the loader's seeds
                pending_rng = None
            run.epoch_rng = rng_state(rngs)
        else:  # resumed mid-epoch: replay the epoch's start, skip the batches already done
            set_rng_state(run.epoch_rng, rngs)
        model.train()
        batches = iter(train_loader)
        for _ in range(run.step):
            next(batches)
        if pending_rng is not None:
            set_rng_state(pending_rng, rngs)
            pending_rng = None
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not show,
            mininterval=1.0,
            total=len(train_loader),
            initial=run.step,
        )
        for batch in bar:
            loss = step(to_device(batch, device))
            if config.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            run.step, run.global_step, run.loss_sum = (
                run.step + 1,
                run.global_step + 1,
                run.loss_sum + loss,
            )
            bar.set_postfix(loss=f"{run.loss_sum / run.step:.4f}")
            if config.save_every and run.global_step % config.save_every == 0:
                save()

        model.eval()
        metrics = {"train_loss": distributed.mean(run.loss_sum / max(run.step, 1), device)}
        if ctx.is_main:
            with torch.inference_mode():
                metrics |= {k: float(v) for k, v in evaluate(model).items()}
        metrics["lr"] = scheduler.get_last_lr()[0]
        score = distributed.broadcast_score(metrics.get(config.monitor, math.nan), device)
        metrics[config.monitor] = score
        run.history.append({"epoch": epoch, **metrics})
        if _improved(score, run.best, config.mode, config.min_delta):
            run.best, run.stale, run.best_epoch = score, 0, epoch
            run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            run.stale += 1
        if on_epoch_end and ctx.is_main:
            on_epoch_end(epoch, metrics)
        if show:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            tqdm.write(f"epoch {epoch}: {shown}{' *' if run.stale == 0 else ''}")
        run.stopped_early = run.stale >= config.patience
        epoch, run.epoch, run.step, run.loss_sum = epoch + 1, epoch + 1, 0, 0.0
        if run.stopped_early or epoch > config.epochs:
            if run.best_state is not None:
                model.load_state_dict(run.best_state)
            run.finished = True
        save()

    if run.finished and run.best_state is not None and checkpoint_path is not None:
        if ctx.is_main:
            save_weights(model, checkpoint_path)
        result.checkpoint = Path(checkpoint_path)
    result.best_epoch, result.best_score = run.best_epoch, run.best
    result.stopped_early, result.accumulation = run.stopped_early, run.parts
    result.history = run.history
    result.seconds = time.perf_counter() - start
    return result
