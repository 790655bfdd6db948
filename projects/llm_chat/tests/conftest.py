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


# The agent's tests (test_agent.py, test_agent_page.py) share one search service and one server.
AGENT_SEARCH_KEY = "search-key"


@pytest.fixture(scope="session")
def agent_search_url(tmp_path_factory):
    """The real search service, with an API key, on a tiny encoder over 30 packaged Wikipedia
    summaries."""
    from mlstack.testing import live_server
    from semantic_search.service import build_app
    from semantic_search.testing import tiny_settings

    settings = tiny_settings(tmp_path_factory.mktemp("search"), api_key=AGENT_SEARCH_KEY)
    with live_server(build_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def agent_chat_url(tiny_llama, tiny_ov):
    """The server on the default backend (OpenVINO, the tiny Llama exported) with a 2,048-token
    window: the tool specs alone take ~800 of its byte-level tokens."""
    from llm_chat.testing import tiny_app
    from mlstack.testing import live_server

    # f32: the CPU plugin's bf16 kernels fault on the tiny model's 16-wide heads.
    app = tiny_app(
        tiny_llama, backend="openvino", ov_dir=tiny_ov, ov_precision="f32", context_tokens=2048
    )
    with live_server(app) as url:
        yield url


@pytest.fixture
def native_engines(tiny_llama):
    """Native engines on the tiny Llama, stopped after the test. `reuse=False` turns prefix
    caching off; `wrap` wraps the backend (recording, faults); options go to `Engine`."""
    from transformers import AutoTokenizer

    from llm_chat.backends import NativeBackend
    from llm_chat.engine import Engine

    made = []

    def make(*, slots=2, max_len=256, reuse=True, wrap=None, **options):
        backend = NativeBackend(tiny_llama, slots=slots, max_len=max_len, threads=1)
        backend.reuses_prefix = reuse
        engine = Engine(
            wrap(backend) if wrap else backend,
            AutoTokenizer.from_pretrained(tiny_llama),
            eos=set(),
            **options,
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop()
