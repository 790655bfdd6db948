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


def pins(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"^([\w.-]+)==(\S+)", lock.read_text(), re.M))


@pytest.mark.parametrize(
    "lock",
    [*sorted(ROOT.glob("requirements-serve-*.lock")), ROOT / "requirements-llm.lock"],
    ids=lambda p: p.name,
)
def test_service_locks_keep_the_shared_serving_versions(lock):
    """The image template installs requirements-serve.lock as a layer all four images share, then
    the service's lock on top (pip --no-deps): a service lock that pinned another version of a
    shared package would swap it in that layer, or install two. `make lock` compiles them with
    the shared lock as a constraint."""
    shared, service = pins(ROOT / "requirements-serve.lock"), pins(lock)
    assert {name: service.get(name) for name in shared} == shared
