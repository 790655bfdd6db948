"""Prefix caching in the native engine: a request takes the free slot sharing the longest prefix
with its prompt and prefills only the rest. The answer must not change (greedy tokens equal a
cold engine's), idle slots' prefixes survive other requests' decoding, and the saving shows in
usage and in the prefix-cache metrics."""

import asyncio

import httpx
import pytest

from llm_chat.prefix_cache import SlotPrefixes
from llm_chat.sampling import SamplingParams
from llm_chat.testing import tiny_app
from mlstack.testing import live_server

HISTORY = list(range(40, 100))


def test_the_free_slot_with_the_longest_shared_prefix_is_picked():
    prefixes = SlotPrefixes(slots=3, max_len=64)
    prefixes.release(0, [1, 2, 3])
    prefixes.release(1, [1, 2, 3, 4, 5])
    assert prefixes.pick([0, 1, 2], [1, 2, 3, 4, 9]) == 1
    assert prefixes.take(1, [1, 2, 3, 4, 9]) == 4
    assert prefixes.held[1] == []  # being overwritten
    assert prefixes.take(0, [1, 2, 3]) == 2  # one prompt token is always prefilled
    prefixes.release(2, list(range(100)))
    assert prefixes.idle_position(2) == 63  # the last position stays free for idle rows


class Recorder:
    def __init__(self):
        self.calls = []

    def prefix_cache(self, prompt, cached):
        self.calls.append((prompt, cached))

    def __getattr__(self, name):  # the other hooks: nothing to record
        return lambda *args: None


def tokens_of(engine, *prompts, max_tokens=12, logprobs=False):
    """Greedy answers, the prompts run concurrently; each is (token ids, cached count), or
    (log-probabilities, cached count)."""

    async def one(prompt):
        params = SamplingParams(max_tokens=max_tokens, temperature=0, logprobs=0)
        entries = []
        async for delta in engine.stream(prompt, params):
            entries += delta.logprobs
        values = [e.logprob if logprobs else e.token for e in entries]
        return values, delta.cached

    async def go():
        return await asyncio.gather(*(one(p) for p in prompts))

    return asyncio.run(asyncio.wait_for(go(), timeout=30))


def test_a_second_turn_reuses_the_first_and_answers_the_same(native_engines):
    observer = Recorder()
    warm, cold = native_engines(observer=observer), native_engines(reuse=False)
    ((first, cached),) = tokens_of(warm, HISTORY)
    assert cached == 0
    second_turn = HISTORY + first + [5, 6, 7]
    ((warm_answer, cached),) = tokens_of(warm, second_turn)
    ((cold_answer, none_cached),) = tokens_of(cold, second_turn)
    assert cached == len(HISTORY) + len(first) - 1  # the last answer token was never fed
    assert none_cached == 0 and warm_answer == cold_answer
    assert observer.calls == [(len(HISTORY), 0), (len(second_turn), cached)]


def test_an_idle_slots_prefix_survives_other_requests_decoding(native_engines):
    warm, cold = native_engines(slots=2), native_engines(reuse=False)
    ((first, _),) = tokens_of(warm, HISTORY)  # slot 0 now holds HISTORY + first
    tokens_of(warm, [9, 8, 7, 6], max_tokens=30)  # decodes in slot 1 beside idle slot 0
    again = HISTORY + first + [3]
    ((warm_answer, cached),) = tokens_of(warm, again, logprobs=True)
    assert cached > len(HISTORY)
    # Log-probabilities, not tokens: a spoilt key at position 0 moves them all, while the
    # random model's greedy tokens can survive it.
    assert warm_answer == pytest.approx(tokens_of(cold, again, logprobs=True)[0][0], abs=1e-4)


def test_usage_and_metrics_report_cached_tokens(tiny_llama):
    with live_server(tiny_app(tiny_llama, backend="native")) as url:
        body = {
            "messages": [
                {"role": "system", "content": "You answer briefly. " * 20},
                {"role": "user", "content": "Tell me about Paris."},
            ],
            "max_tokens": 8,
            "temperature": 0,
        }
        first = httpx.post(url + "/v1/chat/completions", json=body, timeout=30).json()
        second = httpx.post(url + "/v1/chat/completions", json=body, timeout=30).json()
        metrics = httpx.get(url + "/metrics", timeout=30).text
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached == second["usage"]["prompt_tokens"] - 1
    assert second["choices"][0]["message"] == first["choices"][0]["message"]
    hits = [
        line for line in metrics.splitlines() if line.startswith("vllm:prefix_cache_hits_total")
    ]
    assert hits and float(hits[0].split()[-1]) >= cached
