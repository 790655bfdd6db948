"""The serving metrics under vLLM's names with a `model_name` label: scraped from the real app
after real requests, and the prefix-cache counters on their own."""

import httpx
import openai
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from llm_chat import metrics
from llm_chat.testing import tiny_app
from mlstack.testing import live_server

MODEL = "metrics-llama"  # a name no other test module serves: its series are this module's
HELLO = [{"role": "user", "content": "Tell me about Paris."}]


@pytest.fixture(scope="module")
def base_url(tiny_llama, tmp_path_factory):
    app = tiny_app(tiny_llama, model_name=MODEL, monitor_dir=tmp_path_factory.mktemp("monitor"))
    with live_server(app) as url:
        yield url


def scrape(base_url: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of this module's model, as Prometheus parses it."""
    text = httpx.get(base_url + "/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model_name") == MODEL:
                samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted({"model_name": MODEL, **labels}.items()))), 0.0)


def test_a_chat_request_is_counted_under_vllm_names(base_url):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)
    before = scrape(base_url)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=8,
        stream=True,
        temperature=0,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage, reason = (
        chunks[-1].usage,
        next(
            c.choices[0].finish_reason
            for c in chunks[-2:]
            if c.choices and c.choices[0].finish_reason
        ),
    )
    after = scrape(base_url)

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("vllm:time_to_first_token_seconds_count") == 1
    assert delta("vllm:e2e_request_latency_seconds_count") == 1
    assert delta("vllm:e2e_request_latency_seconds_sum") > 0
    assert delta("vllm:prompt_tokens_total") == usage.prompt_tokens > 0
    assert delta("vllm:generation_tokens_total") == usage.completion_tokens > 0
    # One gap per decode step: every token after the first, and a final end-of-sequence one.
    gaps = delta("vllm:inter_token_latency_seconds_count")
    assert usage.completion_tokens - 1 <= gaps <= usage.completion_tokens
    assert delta("vllm:time_per_output_token_seconds_count") == gaps  # the pre-0.11 alias
    assert delta("vllm:request_success_total", finished_reason=reason) == 1
    assert (
        value(after, "vllm:num_requests_running") == value(after, "vllm:num_requests_waiting") == 0
    )
    # The prefix-cache series exist from the start (0 until the engine reports a lookup).
    hits = value(after, "vllm:prefix_cache_hits_total")
    assert ("vllm:prefix_cache_queries_total", (("model_name", MODEL),)) in after
    assert 0 <= hits <= value(after, "vllm:prefix_cache_queries_total")
    # The names Prometheus keeps are vLLM's: no llm_* series is left but the safety counter.
    text = httpx.get(base_url + "/metrics").text
    assert not [
        line
        for line in text.splitlines()
        if line.startswith("llm_") and not line.startswith("llm_refusals_total")
    ]


def sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_running_and_waiting_are_per_model():
    a, b = metrics.PrometheusObserver("gauge-a"), metrics.PrometheusObserver("gauge-b")
    a.queued(waiting=3, running=2)
    b.queued(waiting=0, running=1)
    assert sample("vllm:num_requests_waiting", model_name="gauge-a") == 3
    assert sample("vllm:num_requests_running", model_name="gauge-a") == 2
    assert sample("vllm:num_requests_running", model_name="gauge-b") == 1


def test_prefix_cache_counts_queried_and_cached_tokens():
    observer = metrics.PrometheusObserver("prefix-unit")
    observer.prefix_cache(prompt=100, cached=0)  # a miss: all 100 prefilled
    observer.prefix_cache(prompt=120, cached=96)  # the second turn reuses the first's prefix
    observer.prefix_cache(prompt=40, cached=40)
    assert sample("vllm:prefix_cache_queries_total", model_name="prefix-unit") == 260
    assert sample("vllm:prefix_cache_hits_total", model_name="prefix-unit") == 136


def test_a_hung_up_client_is_an_abort_as_vllm_calls_it():
    observer = metrics.PrometheusObserver("reason-unit")
    observer.finished(prompt=5, output=2, seconds=0.1, reason="cancelled")
    observer.finished(prompt=5, output=8, seconds=0.2, reason="length")
    finished = "vllm:request_success_total"
    assert sample(finished, model_name="reason-unit", finished_reason="abort") == 1
    assert sample(finished, model_name="reason-unit", finished_reason="length") == 1
    assert sample(finished, model_name="reason-unit", finished_reason="cancelled") is None
    assert sample("vllm:prompt_tokens_total", model_name="reason-unit") == 10
    assert sample("vllm:generation_tokens_total", model_name="reason-unit") == 10
