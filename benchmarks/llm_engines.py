"""The contenders of bench_llm_chat.py as engines, and one measurement of concurrent streams
through an engine (shared with its HTTP run, llm_http.py)."""

import asyncio
import time
from functools import partial
from pathlib import Path

MODEL = Path("models/llm_chat/base")
MODELS = Path("models/llm_chat")  # openvino-int8, openvino-int4: `dvc repro llm_export_openvino`
ONNX = Path("models/llm_chat/onnx")  # `dvc repro llm_export`


def chat_ids(tokenizer, text: str) -> list[int]:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True
    )


def ov_export(kind: str) -> tuple[Path, str]:
    """The export folder and compute precision of an openvino contender: openvino-int8 runs
    as served (ov_config.DEFAULT_PRECISION), openvino-int8-bf16 the same export in bf16."""
    from llm_chat.ov_config import DEFAULT_PRECISION

    bf16 = kind.endswith("-bf16")
    return MODELS / kind.removesuffix("-bf16"), "bf16" if bf16 else DEFAULT_PRECISION


def make_engine(kind: str, tokenizer, slots: int, threads: int, eos: set[int]):
    from llm_chat.backends import load_backend
    from llm_chat.engine import Engine

    if kind.startswith("openvino"):
        from llm_chat.ov_config import load_pipeline
        from llm_chat.ov_engine import OVEngine

        folder, precision = ov_export(kind)
        model = load_pipeline(
            folder, slots=slots, max_len=512, threads=threads, precision=precision
        )
        return OVEngine(model, tokenizer, eos=eos, max_queue=slots)
    # Loaded on the engine's thread: see Engine (and `on_own_thread` for the HF baseline).
    build = partial(
        load_backend, kind, MODEL, slots=slots, max_len=512, onnx_dir=ONNX, threads=threads
    )
    return Engine(build, tokenizer, eos=eos, max_queue=slots)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def streams(engine, batch: list[list[int]], tokens: int) -> dict:
    """`batch` concurrently: aggregate tokens/s, first-token p50/p99, the texts."""
    from llm_chat.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0)

    async def one(prompt: list[int]) -> tuple[float, float, str, int]:
        t0, first, text, count = time.perf_counter(), None, "", 0
        async for delta in engine.stream(prompt, params):
            first = first or time.perf_counter()
            text, count = text + delta.text, delta.tokens
        return first - t0, time.perf_counter() - first, text, count

    t0 = time.perf_counter()
    done = await asyncio.gather(*[one(p) for p in batch])
    wall = time.perf_counter() - t0
    ttft = [1000 * f for f, *_ in done]
    return {
        "aggregate_tokens_per_s": round(sum(c for *_, c in done) / wall, 1),
        "ttft_ms_p50": round(percentile(ttft, 0.5), 1),
        "ttft_ms_p99": round(percentile(ttft, 0.99), 1),
        "texts": [t for _, _, t, _ in done],
        "decode_s": [d for _, d, _, _ in done],
    }
