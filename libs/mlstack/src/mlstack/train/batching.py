"""Micro-batches: one optimizer step's batch cut into `parts` pieces whose gradients add up.

global batch = micro batch x accumulation x processes. The loader yields one process's batch per
optimizer step (micro batch x accumulation rows); the loop splits it. A CUDA out-of-memory error
doubles the parts and retries the step, so the global batch, and with it the recipe's
hyper-parameters, stays the same on a laptop and on a large GPU; only the speed changes.
"""

from collections.abc import Callable, Mapping
from typing import Any

import torch


def rows(batch: Any) -> int | None:
    """The leading dimension of the batch's first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if not isinstance(batch, Mapping | list | tuple):
        return None
    for v in batch.values() if isinstance(batch, Mapping) else batch:
        if (n := rows(v)) is not None:
            return n
    return None


def _take(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, Mapping):
        return {k: _take(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_take(v, start, stop) for v in batch)
    return batch  # not per-row (a flag, a length): every part keeps it


def split(
    batch: Any, parts: int, weigh: Callable[[Any], float] | None = None
) -> list[tuple[Any, float]]:
    """Up to `parts` row slices of every tensor in the batch (nested tuples, lists and dicts),
    each with its share of what the loss averages over: the weight that makes the summed part
    losses equal the whole batch's mean loss. `weigh` counts it (default: rows; a loss averaged
    over tokens, such as a causal LM's, needs its token count)."""
    n = rows(batch)
    if n is None or parts <= 1:
        return [(batch, 1.0)]
    size = -(-n // min(parts, n))
    pieces = [_take(batch, s, s + size) for s in range(0, n, size)]
    count = weigh or rows
    total = sum(count(p) for p in pieces) or 1
    return [(p, count(p) / total) for p in pieces]


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def is_out_of_memory(error: BaseException) -> bool:
    # older drivers and some allocators raise a bare RuntimeError with this text
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error)
    )
