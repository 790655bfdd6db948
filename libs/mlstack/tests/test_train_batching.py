"""Micro-batches: splitting, loss weights, and the out-of-memory back-off that keeps the global
batch (tested on the CPU by injecting the error CUDA raises)."""

import pytest
import torch

from mlstack.train.batching import is_out_of_memory, rows, split
from mlstack.train.selftest import train_toy


def test_split_nested_batches_with_weights():
    batch = ({"ids": torch.arange(10).reshape(5, 2), "n": 3}, torch.arange(5))
    parts = split(batch, 2)
    assert [rows(p) for p, _ in parts] == [3, 2]
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert torch.equal(torch.cat([p[1] for p, _ in parts]), torch.arange(5))
    assert parts[0][0][0]["n"] == 3  # not per-row: kept whole
    assert len(split(batch, 99)) == 5 and split(batch, 1) == [(batch, 1.0)]


def test_out_of_memory_halves_the_micro_batch_and_keeps_the_result():
    options = {"epochs": 2, "batch": 32}
    backed_off = train_toy(options | {"oom_above": 8})
    assert backed_off["accumulation"] == 4  # 32 -> 16 -> 8 rows per micro-batch
    plain = train_toy(options)
    for k, v in plain["weights"].items():
        torch.testing.assert_close(backed_off["weights"][k], v, rtol=1e-4, atol=1e-5)


def test_other_errors_and_impossible_back_off_are_raised():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(ValueError("out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        train_toy({"epochs": 1, "oom_above": 0.5})  # even one row is too many
