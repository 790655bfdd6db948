"""LoRA SFT and DPO take the same device, precision and process options as mlstack.train: the
flags reach fit(), bf16 autocast trains on the CPU, DPO's single stacked forward gives the same
margins as two separate ones, `--processes 2` relaunches the command under torchrun, and SFT then
DPO train in two gloo processes under torchrun (no rank left waiting, rank 0 saves)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from llm_chat import cli
from llm_chat.finetune import dpo, sft
from llm_chat.finetune.batches import answer_logprobs, collate
from mlstack.train import fit

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}
ROWS = [
    {"prompt": [{"role": "user", "content": f"Question {i}?"}], "answer": f"Answer {i}."}
    for i in range(8)
]


@pytest.fixture
def no_env():
    """None of the variables, and afterwards none of what the CLI set: its flags write them
    into this process's environment, and a leaked MLSTACK_PRECISION=bf16 made later training
    tests in the same worker train in bf16 (monkeypatch.delenv of an absent variable restores
    nothing)."""
    names = ("MLSTACK_DEVICE", "MLSTACK_PRECISION", "RANK", "LOCAL_RANK", "WORLD_SIZE")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    yield
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(saved)


def test_sft_passes_device_and_precision_to_fit_and_trains_in_bf16(
    tiny_llama, tmp_path, monkeypatch, no_env
):
    seen = []

    def spy(*args, config, **kwargs):
        seen.append(config)
        return fit(*args, config=config, **kwargs)

    monkeypatch.setattr(sft, "fit", spy)
    params = {"lora": LORA, "lr": 1e-3, "epochs": 1, "batch_size": 4, "max_tokens": 32}
    params |= {"seed": 0, "device": "cpu", "precision": "bf16"}
    report = sft.train_sft(tiny_llama, ROWS, ROWS[:4], tmp_path / "out", params)
    assert (seen[0].device, seen[0].precision) == ("cpu", "bf16")
    assert report["history"][0]["eval_loss"] > 0  # the bf16 autocast path ran end to end
    assert (tmp_path / "out" / "config.json").exists()


def test_training_section_of_params_yaml_is_the_default(tmp_path):
    from mlstack.train.device import run_options

    params = tmp_path / "params.yaml"
    params.write_text("training: {device: cpu, precision: bf16, processes: 2}\n")
    assert run_options({}, params) == {"device": "cpu", "precision": "bf16", "compile": False}
    assert run_options({"precision": "fp32"}, params)["precision"] == "fp32"  # stage wins
    assert run_options(None, tmp_path / "missing.yaml")["device"] == "auto"


def test_dpo_stacked_forward_matches_separate_forwards(tiny_llama):
    model, _ = sft.lora_model(tiny_llama, LORA, seed=0)
    for p in model.parameters():  # a non-zero adapter: policy and reference differ
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    chosen = collate([([1, 5, 6, 7, 8, 9], 2), ([1, 5, 6], 1)], pad_id=0)
    rejected = collate([([1, 5, 9], 2), ([1, 5, 6, 7, 8, 9, 10, 11], 3)], pad_id=0)
    with torch.no_grad():
        margins = dpo.reward_margins(model, chosen, rejected)

        def logp(batch):
            return answer_logprobs(model, batch)[0]

        policy = logp(chosen) - logp(rejected)
        with model.disable_adapter():
            reference = logp(chosen) - logp(rejected)
    assert margins.abs().max() > 1e-4  # not trivially zero
    torch.testing.assert_close(margins, policy - reference, rtol=1e-4, atol=1e-5)


def test_cli_flags_set_the_environment_fit_reads(monkeypatch, no_env):
    from llm_chat import pipeline

    seen = {}

    def stage(params):
        import os

        seen.update(device=os.environ["MLSTACK_DEVICE"], precision=os.environ["MLSTACK_PRECISION"])
        return {}

    monkeypatch.setattr(pipeline, "dpo_stage", stage)
    monkeypatch.setattr(cli, "load_section", lambda section: {})
    args = ["dpo", "--device", "cpu", "--precision", "bf16", "--processes", "1"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert seen == {"device": "cpu", "precision": "bf16"}


def test_processes_relaunch_under_torchrun(monkeypatch, no_env):
    calls = []

    def execv(path, argv):
        calls.append(argv)
        raise SystemExit(0)  # execv never returns

    monkeypatch.setattr("os.execv", execv)
    result = CliRunner().invoke(cli.app, ["sft", "--processes", "2"])
    assert result.exit_code == 0, result.output
    argv = calls[0]
    assert argv[0].endswith("torchrun") and "--nproc_per_node=2" in argv
    assert argv[-3:] == ["-m", "llm_chat.cli", "sft"]


def test_sft_and_dpo_train_in_two_torchrun_processes(tiny_llama, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    launched = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            __file__,
            str(tiny_llama),
            str(tmp_path),
        ],
        env=os.environ | {"MLSTACK_DEVICE": "cpu", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    # One file per rank: two ranks printing to one pipe could interleave their lines.
    reports = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("rank-*.json"))]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    # the same global steps on both ranks: the ranks' mean training loss is all-reduced
    assert reports[0]["losses"] == reports[1]["losses"] and len(reports[0]["losses"]) == 2
    assert (tmp_path / "dpo" / "config.json").exists()  # rank 0 saved the merged model


if __name__ == "__main__":  # one rank of the torchrun test above
    base, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [
        {"prompt": [{"role": "user", "content": f"Q {i}?"}], "answer": f"A {i}."} for i in range(9)
    ]
    pairs = [r | {"chosen": r["answer"], "rejected": "No."} for r in rows]
    params = {"lora": LORA, "lr": 1e-3, "epochs": 1, "batch_size": 2, "max_tokens": 32}
    params |= {"seed": 0, "beta": 0.1}
    losses = [sft.train_sft(base, rows, rows[:2], out / "sft", params)["history"][0]["train_loss"]]
    report = dpo.train_dpo(base, pairs, pairs[:2], out / "dpo", params)
    losses.append(report["history"][0]["train_loss"])
    rank = int(os.environ["RANK"])
    (out / f"rank-{rank}.json").write_text(json.dumps({"rank": rank, "losses": losses}))
