"""Chunked prefill in the native engine: a long prompt is prefilled a chunk at a time between
decode steps. The answer must not change (greedy tokens and log-probabilities equal a one-pass
prefill's), running streams must get a decode step between any two chunks, and a request that is
cancelled or fails mid-prefill ends alone and frees its slot. Checked on the order of the
backend's calls, never on timing (that is the benchmark's job)."""

import asyncio
import itertools
import threading

import pytest

from llm_chat.sampling import SamplingParams

LONG = [(i * 37) % 350 + 20 for i in range(1500)]  # token ids inside the tiny vocabulary


class Recording:
    """The real backend, logging its calls: ("prefill", slot, start, tokens) and ("decode",).
    `on_prefill(call number, slot, start)` runs before each prefill (to cancel or fail one)."""

    def __init__(self, backend, on_prefill=None):
        self.inner, self.on_prefill, self.calls = backend, on_prefill, []
        self.name, self.slots, self.reuses_prefix = backend.name, backend.slots, True
        self.max_len, self.vocab_size = backend.max_len, backend.vocab_size

    def prefill(self, slot, tokens, start=0):
        self.calls.append(("prefill", slot, start, len(tokens)))
        if self.on_prefill:
            self.on_prefill(sum(c[0] == "prefill" for c in self.calls), slot, start)
        return self.inner.prefill(slot, tokens, start=start)

    def decode(self, tokens, positions):
        self.calls.append(("decode",))
        return self.inner.decode(tokens, positions)


@pytest.fixture
def engines(native_engines):
    def make(*, chunk, slots=2, reuse=True, on_prefill=None):
        wrap = (lambda backend: Recording(backend, on_prefill)) if reuse else None
        return native_engines(slots=slots, max_len=2048, reuse=reuse, wrap=wrap, chunk_tokens=chunk)

    return make


def answer(engine, prompt, max_tokens=10):
    """Greedy: (token ids, log-probabilities, finish reason, cached tokens)."""

    async def go():
        params = SamplingParams(max_tokens=max_tokens, temperature=0, logprobs=0)
        entries = []
        async for delta in engine.stream(prompt, params):
            entries += delta.logprobs
        return (
            [e.token for e in entries],
            [e.logprob for e in entries],
            delta.finish_reason,
            delta.cached,
        )

    return asyncio.run(asyncio.wait_for(go(), timeout=60))


def prefills(engine):
    return [c[1:] for c in engine.backend.calls if c[0] == "prefill"]


def test_a_chunked_prefill_answers_as_a_one_pass_one(engines):
    chunked, one_pass = engines(chunk=64), engines(chunk=0, reuse=False)
    prompt = LONG[:300]
    tokens, logprobs, _, _ = answer(chunked, prompt)
    assert prefills(chunked) == [(0, start, min(64, 300 - start)) for start in range(0, 300, 64)]
    expected_tokens, expected_logprobs, _, _ = answer(one_pass, prompt)
    assert tokens == expected_tokens
    assert logprobs == pytest.approx(expected_logprobs, abs=1e-4)

    # A second turn: the chunks start after the cached prefix.
    second = prompt + tokens + LONG[300:500]
    chunked.backend.calls.clear()
    tokens, logprobs, _, cached = answer(chunked, second)
    assert cached == len(prompt) + len(tokens) - 1
    assert [start for _, start, _ in prefills(chunked)] == list(range(cached, len(second), 64))
    expected_tokens, expected_logprobs, _, _ = answer(one_pass, second)
    assert tokens == expected_tokens
    assert logprobs == pytest.approx(expected_logprobs, abs=1e-4)


def test_a_running_stream_decodes_between_the_chunks_of_a_long_prompt(engines):
    seen = []
    engine = engines(chunk=64, on_prefill=lambda n, slot, start: seen.append(engine.load()))

    async def go():
        params = SamplingParams(max_tokens=80, temperature=0)
        running = engine.stream([5, 6, 7, 8], params)
        await running.__anext__()  # decoding now
        long = asyncio.create_task(answer_async(engine, LONG))
        rest = [d async for d in running]
        return rest[-1].finish_reason, await long

    finish, long_finish = asyncio.run(asyncio.wait_for(go(), timeout=60))
    assert finish == long_finish == "length"
    calls = engine.backend.calls
    chunks = [i for i, c in enumerate(calls) if c[0] == "prefill" and c[1] == 1]
    assert len(chunks) == 24  # 1,500 tokens, 64 at a time
    assert all(calls[i][3] <= 64 for i in chunks)
    for before, after in itertools.pairwise(chunks):  # a decode between any two
        assert ("decode",) in calls[before + 1 : after]
    assert seen[-1] == (0, 2)  # the prefilling request counts as running


async def answer_async(engine, prompt):
    deltas = [d async for d in engine.stream(prompt, SamplingParams(max_tokens=3, temperature=0))]
    return deltas[-1].finish_reason


def test_cancelling_during_prefill_frees_the_slot(engines):
    def cancel_at_second_chunk(n, slot, start):
        if n == 2:  # as a client that leaves: the engine sees it at its next turn
            engine._slots[slot].request.cancelled = True

    engine = engines(chunk=64, slots=1, on_prefill=cancel_at_second_chunk)
    finished, done = [], threading.Event()

    def emit(delta):
        finished.append(delta)
        if delta.finish_reason:
            done.set()

    engine.submit(LONG[:640], SamplingParams(max_tokens=5, temperature=0), emit)
    assert done.wait(timeout=60)
    assert len(finished) == 1  # the finishing delta only: no token before the cancellation
    assert finished[0].finish_reason == "cancelled" and finished[0].tokens == 0
    assert len(prefills(engine)) == 2  # no chunk after the cancellation
    assert engine.load() == (0, 0)
    assert engine.prefixes.held[0] == LONG[:128]  # what the two chunks wrote, and only that
    # The slot serves the next request, from the prefix that was written.
    _, _, finish, cached = answer(engine, LONG[:200])
    assert (finish, cached) == ("length", 128)


def test_a_failing_chunk_ends_only_its_request(engines):
    def fail_second_chunk(n, slot, start):
        if slot == 1 and start == 64:
            raise RuntimeError("chunk failed on purpose")

    engine = engines(chunk=64, on_prefill=fail_second_chunk)

    async def go():
        params = SamplingParams(max_tokens=40, temperature=0)
        running = engine.stream([5, 6, 7, 8], params)
        first = await running.__anext__()
        long = asyncio.create_task(answer_async(engine, LONG[:300]))
        rest = [first] + [d async for d in running]
        return rest, await long

    deltas, long_finish = asyncio.run(asyncio.wait_for(go(), timeout=60))
    assert long_finish == "error"
    assert deltas[-1].finish_reason == "length" and deltas[-1].tokens == 40
    assert engine.prefixes.held[1] == []  # its keys and values are not to be trusted
    assert engine.load() == (0, 0)


def test_decode_steps_beside_a_prefilling_slot_leave_its_prompt_intact(engines):
    # The prefilling slot (0) lies below a decoding one (1), so each decode step gives it a dummy
    # row: at position 0 (where an empty slot's goes) it would overwrite its first chunk's keys.
    engine, one_pass = engines(chunk=64), engines(chunk=0, reuse=False)
    answer(engine, [9, 9, 9], max_tokens=1)  # slot 0 is now the more recently used

    async def go():
        running = engine.stream([5, 6, 7, 8], SamplingParams(max_tokens=60, temperature=0))
        await running.__anext__()  # decoding in slot 1
        long = await asyncio.to_thread(answer, engine, LONG[:300])
        return [d async for d in running][-1].finish_reason, long

    finish, (_, logprobs, _, _) = asyncio.run(asyncio.wait_for(go(), timeout=60))
    assert finish == "length"
    assert {c[1] for c in engine.backend.calls if c[0] == "prefill" and c[3] == 64} == {0}
    _, expected_logprobs, _, _ = answer(one_pass, LONG[:300])
    assert logprobs == pytest.approx(expected_logprobs, abs=1e-4)
