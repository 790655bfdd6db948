"""Fixtures: the tiny Llama of `llm_chat.testing`."""

from pathlib import Path

import pytest

from llm_chat.testing import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
