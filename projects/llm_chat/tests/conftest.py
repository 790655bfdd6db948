"""Fixtures: the tiny Llama of `llm_chat.testing`."""

from pathlib import Path

import pytest

from llm_chat.testing import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_ov(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama exported for the openvino backend, fp32 weights (exact comparisons)."""
    pytest.importorskip("openvino_genai")
    pytest.importorskip("optimum.intel")
    from llm_chat.ov_export import export

    out = tmp_path_factory.mktemp("tiny-ov") / "ov"
    export(tiny_llama, out, weights="fp32")
    return out
