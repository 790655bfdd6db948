"""Two gloo processes on the CPU train to the same weights as one process on the same global
batch, and take the same early-stopping decision."""

import time

import torch

from mlstack.train.distributed import Context, per_process, run_processes, shard, unwrap
from mlstack.train.selftest import train_toy

OPTIONS = {"epochs": 4, "batch": 32, "lr": 0.05, "patience": 1}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_two_processes_match_one_on_the_same_global_batch():
    start = time.perf_counter()
    one = train_toy(OPTIONS)
    one_seconds = time.perf_counter() - start
    start = time.perf_counter()
    two = run_processes(train_toy, 2, OPTIONS)
    two_seconds = time.perf_counter() - start
    assert_same_weights(two["weights"], one["weights"])
    # early stopping agreed: both runs stop after the same epoch, with the same scores
    assert [h["val_accuracy"] for h in two["history"]] == [
        h["val_accuracy"] for h in one["history"]
    ]
    print(f"1 process {one_seconds:.1f} s, 2 processes {two_seconds:.1f} s (with start-up)")


def test_accumulation_keeps_the_global_batch():
    accumulated = train_toy(OPTIONS | {"accumulation": 4})
    assert_same_weights(accumulated["weights"], train_toy(OPTIONS)["weights"])


def test_helpers():
    ctx = Context(rank=1, world_size=2, local_rank=1)
    assert per_process(64, ctx) == 32 and shard(list(range(5)), ctx) == [1, 3]
    model = torch.nn.Linear(2, 2)
    wrapper = torch.nn.Module()
    wrapper.module = model  # how DistributedDataParallel holds the user's module
    assert unwrap(wrapper) is model and unwrap(model) is model
