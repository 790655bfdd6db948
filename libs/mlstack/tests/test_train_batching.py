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


def test_a_token_mean_loss_is_weighed_by_tokens():
    # rows 0-1 carry 7 labelled tokens, rows 2-3 carry 3: a token-mean loss over the whole batch
    # is 7/10 of the first half's mean plus 3/10 of the second's, not half and half
    labels = torch.tensor(
        [[1, 1, 1, 1], [1, 1, 1, -100], [-100, 1, -100, -100], [1, -100, 1, -100]]
    )
    per_token = torch.arange(16, dtype=torch.float).reshape(4, 4)

    def token_mean(b: dict) -> torch.Tensor:
        keep = b["labels"] != -100
        return per_token[b["rows"]][keep].mean()

    batch = {"labels": labels, "rows": torch.arange(4)}
    parts = split(batch, 2, weigh=lambda b: float((b["labels"] != -100).sum()))
    assert [w for _, w in parts] == [0.7, 0.3]
    total = sum(token_mean(p) * w for p, w in parts)
    torch.testing.assert_close(total, token_mean(batch))
    assert [w for _, w in split(batch, 2)] == [0.5, 0.5]  # rows by default
