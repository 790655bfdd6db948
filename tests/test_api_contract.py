"""Every service against its own OpenAPI document, with every schemathesis check: no 5xx, every
status documented, bodies and headers as declared, schema-valid requests accepted and invalid
ones refused, correct 405s, auth enforced. Each service runs on its tiny test models, with an
API key, over real HTTP."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.testing import live_server, schemathesis_run

KEY = "contract-key"
# Generated examples per operation in the fuzzing and stateful phases (schemathesis_run's default
# is 25). The coverage phase, which derives the boundary and invalid values from each schema (the
# largest n, the longest prompt), and the explicit examples run in full whatever this says.
MAX_EXAMPLES = 10


@contextlib.contextmanager
def image_classifier(folder: Path) -> Iterator[str]:
    from image_classifier.testing import tiny_app

    with live_server(tiny_app(folder, api_key=KEY)) as base:
        yield base


@contextlib.contextmanager
def semantic_search(folder: Path) -> Iterator[str]:
    from semantic_search.service import build_app
    from semantic_search.testing import tiny_settings

    with live_server(build_app(tiny_settings(folder, api_key=KEY))) as base:
        yield base


@contextlib.contextmanager
def llm_chat(folder: Path) -> Iterator[str]:
    from llm_chat.testing import save_tiny_llama, tiny_app

    # A slot for each of n <= 8 choices and a 256-token context: the fuzzer's largest request
    # (8 choices of every token the context leaves) is one wave of decoding, well inside the
    # response-time check (with 4 slots and 512 tokens it took two waves, over 5 s on 2 cores).
    app = tiny_app(save_tiny_llama(folder), api_key=KEY, slots=8, context_tokens=256)
    with live_server(app) as base:
        yield base


@contextlib.contextmanager
def rag_chatbot(folder: Path) -> Iterator[str]:
    from rag_chatbot.service import build_app
    from rag_chatbot.testing import FakeLLM, tiny_settings

    with live_server(FakeLLM().app(), wait_ready=False) as generator:
        settings = tiny_settings(folder, generator + "/v1", api_key=KEY)
        with live_server(build_app(settings)) as base:
            yield base


ROOT = Path(__file__).resolve().parents[1]
# (service, hooks: what a schema cannot say, such as a valid image or document; a config with
# the service's documented exceptions)
SERVICES = [
    (image_classifier, "image_classifier.st_hooks", None),
    (semantic_search, None, None),
    (llm_chat, None, ROOT / "projects/llm_chat/schemathesis.toml"),
    (rag_chatbot, "rag_chatbot.st_hooks", None),
]


@pytest.mark.parametrize(
    ("service", "hooks", "config"), SERVICES, ids=[s[0].__name__ for s in SERVICES]
)
def test_the_service_keeps_its_api_contract(service, hooks, config, tmp_path):
    with service(tmp_path) as base:
        result = schemathesis_run(
            base, api_key=KEY, hooks=hooks, config=config, max_examples=MAX_EXAMPLES
        )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout
