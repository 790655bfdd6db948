"""Faults at the service: a model that fails or stalls, a client that hangs up, a model file
that is broken. Every request ends with a clear answer; nothing keeps decoding for nobody."""

import json
import shutil
import time

import httpx
import pytest

from llm_chat.testing import tiny_app
from mlstack.testing import live_server

HELLO = {"messages": [{"role": "user", "content": "Tell me about Paris."}], "temperature": 0}


class Faults:
    """Wraps the live engine's backend: prefill or decode can fail or be slowed down."""

    def __init__(self, backend):
        self.inner = backend
        self.name, self.slots = backend.name, backend.slots
        self.max_len, self.vocab_size = backend.max_len, backend.vocab_size
        self.fail_prefill = self.fail_decode = False
        self.prefill_delay = self.decode_delay = 0.0

    def prefill(self, slot, tokens, **offset):  # offset: a cached prefix's `start`
        time.sleep(self.prefill_delay)
        if self.fail_prefill:
            raise RuntimeError("prefill failed on purpose")
        return self.inner.prefill(slot, tokens, **offset)

    def decode(self, tokens, positions):
        time.sleep(self.decode_delay)
        if self.fail_decode:
            raise RuntimeError("decode failed on purpose")
        return self.inner.decode(tokens, positions)


@pytest.fixture(scope="module")
def served(tiny_llama, tmp_path_factory):
    app = tiny_app(
        tiny_llama,
        slots=2,
        context_tokens=512,
        stall_timeout_s=0.5,
        monitor_dir=tmp_path_factory.mktemp("monitor"),
    )
    with live_server(app) as url:
        engine = next(iter(app.state.hub)).model.engine
        engine.backend = Faults(engine.backend)
        yield url, engine


@pytest.fixture
def faults(served):
    url, engine = served
    engine.backend = Faults(engine.backend.inner)  # every test starts without faults
    yield url, engine, engine.backend
    deadline = time.monotonic() + 10  # the next test starts on an idle engine
    while engine.load() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)


def post(url: str, body: dict, timeout: float = 10) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=timeout)


def test_a_failing_prefill_is_a_500_at_once_and_the_next_request_works(faults):
    # Before: the request left the queue, never got a slot, and its client waited forever.
    url, _, backend = faults
    backend.fail_prefill = True
    started = time.perf_counter()
    response = post(url, HELLO | {"max_tokens": 5})
    assert time.perf_counter() - started < 2 and response.status_code == 500
    assert response.json()["error"]["code"] == "generation_failed"
    backend.fail_prefill = False
    assert post(url, HELLO | {"max_tokens": 5}).status_code == 200


def test_a_decode_failure_mid_stream_is_an_error_event(faults):
    url, _, backend = faults
    backend.fail_decode = True
    body = HELLO | {"max_tokens": 20, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as r:
        assert r.status_code == 200
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "generation_failed" and error["message"]
    assert post(url, HELLO | {"max_tokens": 5}).status_code == 500  # plain: a 500 envelope


def test_a_stalled_engine_answers_504_within_the_stall_timeout(faults):
    url, _, backend = faults
    backend.prefill_delay = 2.0
    started = time.perf_counter()
    response = post(url, HELLO | {"max_tokens": 5})
    elapsed = time.perf_counter() - started
    assert response.status_code == 504 and 0.4 < elapsed < 1.5
    assert response.json()["error"]["code"] == "timeout"


def test_a_plain_request_stops_decoding_when_its_client_hangs_up(faults):
    # Before: a non-streaming request decoded to max_tokens for a client long gone, holding
    # its slot; now the slot frees within the disconnect poll.
    url, engine, backend = faults
    backend.decode_delay = 0.02  # 400 tokens: 8 s of decoding
    with pytest.raises(httpx.ReadTimeout):
        post(url, HELLO | {"max_tokens": 400}, timeout=0.5)
    left = time.perf_counter()
    while engine.load() != (0, 0) and time.perf_counter() - left < 5:
        time.sleep(0.02)
    assert engine.load() == (0, 0) and time.perf_counter() - left < 1.5
    metrics = httpx.get(url + "/metrics").text
    assert 'vllm:request_success_total{finished_reason="abort"' in metrics  # vLLM's hang-up


def test_max_queue_zero_starts_and_refuses_beyond_the_slots(tiny_llama, tmp_path):
    # Before: max_queue 0 refused the warm-up request, so the service never became ready.
    app = tiny_app(tiny_llama, slots=1, max_queue=0, context_tokens=512, monitor_dir=tmp_path)
    with live_server(app, timeout_s=30) as url:
        engine = next(iter(app.state.hub)).model.engine
        engine.backend = Faults(engine.backend)
        engine.backend.decode_delay = 0.01
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            calls = [pool.submit(post, url, HELLO | {"max_tokens": 100}) for _ in range(3)]
            statuses = sorted(c.result().status_code for c in calls)
    assert statuses[0] == 200 and set(statuses) <= {200, 503} and 503 in statuses


def test_a_truncated_model_file_fails_readiness_and_liveness(tiny_llama, tmp_path):
    broken = shutil.copytree(tiny_llama, tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with live_server(tiny_app(broken, monitor_dir=tmp_path), wait_ready=False) as url:
        deadline = time.monotonic() + 30
        while httpx.get(url + "/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url + "/healthz").status_code == 503
        ready = httpx.get(url + "/readyz")
        assert (
            ready.status_code == 503 and "model loading failed" in ready.json()["error"]["message"]
        )
        refused = post(url, HELLO)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert refused.json()["error"]["code"] == "not_ready"
