"""A training run killed with SIGKILL mid-epoch resumes from its last checkpoint to the same
weights as a run never interrupted; checkpoints hold no pickled objects."""

import json
import os
import signal
import subprocess
import sys

import torch

from mlstack.train.checkpoint import load_state
from mlstack.train.selftest import train_toy

# dropout and augmentation noise: the weights depend on every random stream being restored
OPTIONS = {"epochs": 3, "dropout": 0.2, "noise": 0.3, "save_every": 3}


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    state = tmp_path / "state.pt"
    reference = train_toy(OPTIONS)
    options = OPTIONS | {"state": str(state)}
    # 8 steps an epoch: killed during step 13, after the checkpoint of step 12 (epoch 2, step 4)
    killed = subprocess.run(
        [sys.executable, "-m", "mlstack.train.selftest", json.dumps(options | {"kill_at": 13})],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = load_state(state)  # weights_only=True: tensors and plain data only
    assert (saved["progress"]["epoch"], saved["progress"]["step"]) == (2, 4)
    assert not list(tmp_path.glob("*.tmp"))

    resumed = train_toy(options)
    assert resumed["resumed_at_step"] == 12
    for k, v in reference["weights"].items():
        assert torch.equal(resumed["weights"][k], v), k
    assert resumed["history"] == reference["history"]

    again = train_toy(options)  # a finished state: nothing left to train
    assert again["history"] == reference["history"]
    assert all(torch.equal(again["weights"][k], v) for k, v in reference["weights"].items())


def test_a_state_from_another_configuration_is_not_resumed(tmp_path):
    options = {"epochs": 1, "state": str(tmp_path / "state.pt")}
    train_toy(options)
    changed = train_toy(options | {"lr": 0.01})
    assert changed["resumed_at_step"] is None and len(changed["history"]) == 1
