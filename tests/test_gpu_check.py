"""scripts/gpu_check.py without a GPU: it says it needs CUDA and exits 2; with `--device cpu` the
same three checks (AMP classifier training, a LoRA SFT step, native decoding) run end to end and
print their figures as JSON."""

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load().main([]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "skipped" and "CUDA" in out["reason"]


def test_the_checks_run_on_the_cpu_and_print_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLSTACK_DEVICE", raising=False)
    monkeypatch.delenv("MLSTACK_PRECISION", raising=False)
    code = load().main(["--device", "cpu", "--small", "--out", str(tmp_path / "gpu.json")])
    printed = json.loads(capsys.readouterr().out)  # stdout is the JSON and nothing else
    assert code == 0, printed
    assert printed == json.loads((tmp_path / "gpu.json").read_text())
    classifier = printed["classifier_amp"]
    assert classifier["precision"] == "fp32" and classifier["eager"]["images_per_s"] > 0
    assert 0 <= classifier["eager"]["val_accuracy"] <= 1
    sft = printed["lora_sft_step"]
    assert sft["steps"] == 1 and sft["eval_loss"] > 0 and sft["trainable_parameters"] > 0
    decode = printed["native_decode"]
    # the same device twice: greedy decoding is deterministic, every token matches
    assert decode["greedy_tokens_equal_to_cpu_fp32"] == decode["new_tokens"] == 8
