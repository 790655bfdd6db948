"""Device and precision selection (auto, params, environment), and bf16 autocast on the CPU."""

import pytest
import torch

from mlstack.train.device import resolve_device, resolve_precision
from mlstack.train.selftest import train_toy

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_device_auto_params_and_environment(monkeypatch, fake_gpu):
    monkeypatch.delenv("MLSTACK_DEVICE", raising=False)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)  # rank's own GPU
    assert resolve_device("cpu") == CPU
    monkeypatch.setenv("MLSTACK_DEVICE", "cpu")
    assert resolve_device("cuda") == CPU  # the operator's override wins


def test_cuda_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.delenv("MLSTACK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    with pytest.raises(RuntimeError, match="no CUDA"):
        resolve_device("cuda")


def test_precision_choices(monkeypatch):
    monkeypatch.delenv("MLSTACK_PRECISION", raising=False)
    assert resolve_precision("auto", CPU).name == "fp32"
    assert resolve_precision("bf16", CPU).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", CPU)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    fp16 = resolve_precision("auto", GPU)
    assert fp16.name == "fp16" and fp16.needs_scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    bf16 = resolve_precision("auto", GPU)
    assert bf16.name == "bf16" and not bf16.needs_scaler
    monkeypatch.setenv("MLSTACK_PRECISION", "fp32")
    assert resolve_precision("bf16", GPU).name == "fp32"
    monkeypatch.setenv("MLSTACK_PRECISION", "int4")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp32", CPU)


def test_bf16_autocast_trains_on_the_cpu(monkeypatch):
    monkeypatch.delenv("MLSTACK_PRECISION", raising=False)
    out = train_toy({"epochs": 2, "precision": "bf16"})
    assert out["history"][-1]["val_accuracy"] > 0.9
    assert all(v.dtype == torch.float32 for v in out["weights"].values())  # fp32 master weights
