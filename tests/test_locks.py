"""The locks install the CPU stack: no CUDA libraries or triton (2.7 GB and 0.7 GB that a CPU
torch never loads) in any of them, and torch pinned to the version the CPU wheel carries."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCKS = sorted(ROOT.glob("requirements*.lock"))
GPU_ONLY = re.compile(r"^(nvidia-[\w-]+|triton|cuda-[\w-]+)==", re.M)


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_no_lock_names_a_gpu_only_package(lock):
    assert GPU_ONLY.findall(lock.read_text()) == []


@pytest.mark.parametrize("source", ["requirements.in", "requirements-llm.in"])
def test_torch_is_asked_for_as_the_cpu_build(source):
    pins = re.findall(r"^torch==(\S+)", (ROOT / source).read_text(), re.M)
    assert pins and all(pin.endswith("+cpu") for pin in pins)
