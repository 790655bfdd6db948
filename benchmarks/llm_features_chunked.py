"""bench_llm_features.py's chunked prefill part: 4 streams decode greedily while a long prompt
arrives, and the gaps between their tokens from its arrival to its first token are measured, with
and without chunked prefill, on OpenVINO and on the native engine."""

import asyncio
import statistics
from functools import partial

from bench_grammar import PROMPTS
from llm_engines import chat_ids, percentile
from llm_features_setup import (
    CONTEXT,
    Setup,
    answer,
    long_prompt,
    native_engine,
    ov_engine,
    stop_kept,
    turn,
)

from llm_chat.sampling import SamplingParams


def ms(values: list[float]) -> dict:
    return {
        "p50_ms": round(1000 * percentile(values, 0.5), 1),
        "p99_ms": round(1000 * percentile(values, 0.99), 1),
        "max_ms": round(1000 * max(values), 1),
        "n": len(values),
    }


async def arrival(engine, prompts: list[list[int]], long_ids: list[int], warm: int) -> dict:
    """The 4 streams' token gaps: steady (before the long prompt) and from its arrival to its
    first token (a gap counts when it began before that first token)."""
    record, counts = engine.observer, [0] * len(prompts)
    params = SamplingParams(max_tokens=CONTEXT - max(map(len, prompts)), temperature=0)

    async def run(i: int, ids: list[int]) -> None:
        async for delta in engine.stream(ids, params):
            counts[i] = delta.tokens

    tasks = [asyncio.create_task(run(i, p)) for i, p in enumerate(prompts)]
    while min(counts) < warm:
        await asyncio.sleep(0.005)
    steady = len(record.gaps)
    await asyncio.sleep(0.5)
    start = len(record.gaps)
    await answer(engine, long_ids, SamplingParams(max_tokens=1, temperature=0))
    came, ttft = record.first[-1]
    await asyncio.sleep(0.3)  # the step after it: the native engine's stalled gap ends there
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # 2 ms: the hooks run a little after the engine's clock; gaps are tens of ms apart.
    window = [g for end, g in record.gaps[start:] if end - g < came - 0.002]
    return {"steady": [g for _, g in record.gaps[steady:start]], "window": window, "ttft": ttft}


def bench_chunked(s: Setup, episodes: int, long_tokens: int, warm: int) -> dict:
    # End-of-sequence ignored: the 4 streams run until cancelled.
    engines = {
        "openvino_chunked": ov_engine(s, slots=5, eos=set()),
        "openvino_unchunked": ov_engine(s, slots=5, eos=set(), split_fuse=False),
        "native_chunked": partial(native_engine, s, slots=5, eos=set(), chunk_tokens=256),
        "native_unchunked": partial(native_engine, s, slots=5, eos=set(), chunk_tokens=0),
    }
    prompts = [chat_ids(s.tokenizer, p) for p in PROMPTS]
    runs: dict[str, list[dict]] = {label: [] for label in engines}
    try:
        for episode in range(episodes + 1):  # episode 0 warms each engine up
            for label, made in engines.items():
                ids = long_prompt(s.tokenizer, f"{label}-{episode}", long_tokens)
                with turn(made) as engine:
                    r = asyncio.run(arrival(engine, prompts, ids, warm))
                if episode:
                    runs[label].append(r | {"prompt_tokens": len(ids)})
                print(
                    f"chunked episode {episode} {label}: {len(r['window'])} gaps, max "
                    f"{1000 * max(r['window']):.0f} ms, first token {1000 * r['ttft']:.0f} ms",
                    flush=True,
                )
    finally:
        stop_kept(engines.values())
    result: dict = {
        "streams": len(prompts),
        "episodes": episodes,
        "warm_tokens": warm,
        "prompt_tokens": runs["native_chunked"][0]["prompt_tokens"],
        "openvino_unchunked": {
            "scheduler": "dynamic_split_fuse off, "
            f"max_num_batched_tokens {CONTEXT}: below the prompt's "
            "length OpenVINO fails the step (its worker dies)"
        },
    }
    for label, done in runs.items():
        result[label] = result.get(label, {}) | {
            "during_arrival": ms([g for r in done for g in r["window"]]),
            "steady": ms([g for r in done for g in r["steady"]]),
            "long_prompt_ttft_ms_median": round(
                1000 * statistics.median(r["ttft"] for r in done), 1
            ),
        }
    return result
