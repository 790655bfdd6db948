"""Two gloo processes launched by torchrun on the CPU train to the same weights as one process
on the same global batch, and take the same early-stopping decision."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from mlstack.train.distributed import Context, per_process, shard, unwrap
from mlstack.train.selftest import train_toy

OPTIONS = {"epochs": 4, "batch": 32, "lr": 0.05, "patience": 1}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_two_torchrun_processes_match_one_on_the_same_global_batch(tmp_path):
    start = time.perf_counter()
    one = train_toy(OPTIONS)
    one_seconds = time.perf_counter() - start
    weights = tmp_path / "two.safetensors"
    torchrun = Path(sys.executable).with_name("torchrun")
    options = json.dumps(OPTIONS | {"weights_out": str(weights)})
    start = time.perf_counter()
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "mlstack.train.selftest"]
    launched = subprocess.run(
        [*command, options],
        env=os.environ | {"MLSTACK_DEVICE": "cpu", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    two_seconds = time.perf_counter() - start
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert_same_weights(load_file(weights), one["weights"])
    # early stopping agreed: rank 0's history (the one printed) stops after the same epoch
    history = json.loads(launched.stdout.strip().splitlines()[-1])["history"]
    assert [h["val_accuracy"] for h in history] == [h["val_accuracy"] for h in one["history"]]
    print(f"1 process {one_seconds:.1f} s, 2 processes {two_seconds:.1f} s (with start-up)")


def test_accumulation_keeps_the_global_batch():
    accumulated = train_toy(OPTIONS | {"accumulation": 4})
    assert_same_weights(accumulated["weights"], train_toy(OPTIONS)["weights"])


def test_helpers():
    ctx = Context(rank=1, world_size=2, local_rank=1)
    assert per_process(64, ctx) == 32 and shard(list(range(5)), ctx) == [1, 3]
    assert shard(list(range(5)), Context(0, 2, 0)) == [0, 2]  # same step count on every rank
    assert shard(list(range(5))) == list(range(5))  # one process: everything
    model = torch.nn.Linear(2, 2)
    wrapper = torch.nn.Module()
    wrapper.module = model  # how DistributedDataParallel holds the user's module
    assert unwrap(wrapper) is model and unwrap(model) is model


def test_only_rank_zero_tracks_in_mlflow(tmp_path, monkeypatch):
    from mlstack.train import mlflow_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RANK", "1")
    with mlflow_run("exp", params={"lr": 0.1}) as run:
        assert run is None
    assert not (tmp_path / "mlflow.db").exists()  # rank 1 opened no store, logged no run
