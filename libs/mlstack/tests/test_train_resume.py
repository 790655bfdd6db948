"""A training run killed with SIGKILL mid-epoch resumes from its last checkpoint to the same
weights as a run never interrupted; checkpoints hold no pickled objects."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from mlstack.train.checkpoint import load_state
from mlstack.train.selftest import train_toy

# dropout and augmentation noise: the weights depend on every random stream being restored
OPTIONS = {"epochs": 3, "dropout": 0.2, "noise": 0.3, "save_every": 3}


# 8 steps an epoch. Mid-epoch: killed during step 13, after the checkpoint of step 12 (epoch 2,
# step 4). At an epoch boundary: only epoch-end states, killed during step 9, so the run resumes
# at epoch 2, step 0 (the saved random state must be back before the loader draws its seeds).
KILLS = {"mid_epoch": (3, 13, (2, 4), 12), "epoch_boundary": (0, 9, (2, 0), 8)}


@pytest.mark.parametrize("where", KILLS)
def test_killed_run_resumes_to_the_same_weights(tmp_path, where):
    save_every, kill_at, saved_at, resumed_at = KILLS[where]
    state = tmp_path / "state.pt"
    reference = train_toy(OPTIONS | {"save_every": save_every})
    options = OPTIONS | {"save_every": save_every, "state": str(state)}
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.train.selftest",
            json.dumps(options | {"kill_at": kill_at}),
        ],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = load_state(state)  # weights_only=True: tensors and plain data only
    assert (saved["progress"]["epoch"], saved["progress"]["step"]) == saved_at
    assert not list(tmp_path.glob("*.tmp"))

    resumed = train_toy(options)
    assert resumed["resumed_at_step"] == resumed_at
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
