"""Data-parallel training with torch.distributed, launched by `torchrun` (the standard launcher:
the same command scales from one machine's processes to several machines).

Under `torchrun --nproc_per_node N` each process reads RANK, WORLD_SIZE and LOCAL_RANK from its
environment; without them the job is one process and every helper here is a no-op. gloo on the
CPU, NCCL on GPUs.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> Context:
    """This process's place in the job, from torchrun's environment (one process without it)."""
    env = os.environ
    return Context(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def init(device: torch.device) -> Context:
    """Joins the process group once (no-op for a single process)."""
    ctx = context()
    if ctx.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size)
    return ctx


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def broadcast_score(value: float, device: torch.device) -> float:
    """Rank 0's value on every rank: all ranks then take the same early-stopping decision."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def mean(value: float, device: torch.device) -> float:
    """The average over ranks (each rank's training loss, say)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def loader(
    dataset: Dataset, batch_size: int, *, seed: int, shuffle: bool = True, **kwargs: Any
) -> DataLoader:
    """This rank's share of each global batch (`batch_size` is per process). The order depends
    on (seed, epoch) only, so a resumed run and a run with more processes see the same samples
    per step; fit() calls `set_epoch`."""
    ctx = context()
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)


def per_process(global_batch: int, ctx: Context | None = None) -> int:
    ctx = ctx or context()
    if global_batch % ctx.world_size:
        raise ValueError(
            f"batch size {global_batch} does not split over {ctx.world_size} processes"
        )
    return global_batch // ctx.world_size


def shard(items: list, ctx: Context | None = None) -> list:
    """Rows rank, rank + world, ...: the rank's part of a list of examples or batches. The tail
    that does not split evenly is dropped: every rank must take the same number of steps, or
    DDP's gradient all-reduce waits for a rank that has finished."""
    ctx = ctx or context()
    usable = len(items) - len(items) % ctx.world_size
    return items[:usable][ctx.rank :: ctx.world_size]
