"""LLM decoding benchmark, one run, same prompts and thread count for every contender:

- HF `generate` (the baseline): batch 1, one prompt after another; and a static batch of 8
  (left-padded), the best `generate` can do for 8 streams;
- our engine on each backend: one stream alone, then 8 concurrent streams (continuous batching);
- llama.cpp on the packaged GGUF, batch 1, where `llama-cpp-python` is installed.

Reported: decode tokens/s at batch 1 (after the first token), aggregate tokens/s with 8 streams,
time to first token. Greedy, end-of-turn ignored, so every contender writes exactly the same
number of tokens. Writes reports/llm_chat/benchmark.json. Run after `dvc repro llm_convert`.
"""

import argparse
import asyncio
import json
import time
from pathlib import Path

import torch

MODEL = Path("models/llm_chat/base")
ONNX = Path("models/llm_chat/onnx")  # `dvc repro llm_export`
OUT = Path("reports/llm_chat/benchmark.json")
PROMPTS = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Write a haiku about the sea.",
    "Who painted the Mona Lisa?",
    "Give me three tips for learning to code.",
    "What is a prime number?",
    "Describe the water cycle.",
    "Why is the sky blue?",
]


def chat_ids(tokenizer, text: str) -> list[int]:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True
    )


def bench_hf(tokenizer, prompts: list[list[int]], tokens: int) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id or 0

    def generate(batch: list[list[int]], n: int) -> float:
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=pad)  # fmt: skip
        return time.perf_counter() - t0

    generate(prompts[:1], 4)  # warm-up
    with torch.inference_mode():  # greedy openings: the reference the backends must write too
        openings = [tokenizer.decode(model.generate(torch.tensor([p]), max_new_tokens=12,
                                                    do_sample=False, pad_token_id=pad)[0, len(p):])
                    for p in prompts]  # fmt: skip
    ttft = [generate([p], 1) for p in prompts]
    total = sum(generate([p], tokens) for p in prompts)
    batch8 = generate(prompts, tokens)
    decode_s = total - sum(ttft)
    return {
        "ttft_ms_p50": round(1000 * sorted(ttft)[len(ttft) // 2], 1),
        "decode_tokens_per_s_b1": round(len(prompts) * (tokens - 1) / decode_s, 1),
        "aggregate_tokens_per_s_8_sequential": round(len(prompts) * tokens / total, 1),
        "aggregate_tokens_per_s_8_static_batch": round(len(prompts) * tokens / batch8, 1),
        "openings": openings,
    }


def bench_engine(kind: str, tokenizer, prompts: list[list[int]], tokens: int,
                 openings: list[str]) -> dict:  # fmt: skip
    from llm_chat.backends import load_backend
    from llm_chat.engine import Engine
    from llm_chat.sampling import SamplingParams

    backend = load_backend(kind, MODEL, slots=len(prompts), max_len=512, onnx_dir=ONNX)
    engine = Engine(backend, tokenizer, eos=set())  # end-of-turn ignored: exactly `tokens` each
    params = SamplingParams(max_tokens=tokens, temperature=0)

    texts: dict[int, str] = {}

    async def one(prompt: list[int]) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        first, text = None, ""
        async for delta in engine.stream(prompt, params):
            if first is None:
                first = time.perf_counter()
            text += delta.text
        texts[id(prompt)] = text
        return t0, first, time.perf_counter()

    async def run(batch: list[list[int]]) -> list[tuple[float, float, float]]:
        return await asyncio.gather(*[one(p) for p in batch])

    try:
        asyncio.run(run(prompts[:1]))  # warm-up
        alone = [asyncio.run(run([p]))[0] for p in prompts]
        t0 = time.perf_counter()
        together = asyncio.run(run(prompts))
        wall = time.perf_counter() - t0
    finally:
        engine.stop()
    decode_s = sum(end - first for _, first, end in alone)
    # A speed figure means nothing if the text is wrong: the share of prompts whose first 24
    # characters are HF's greedy ones (INT8 may drift later; a broken export differs at once).
    same = [
        texts[id(p)].strip()[:24] == o.strip()[:24] for p, o in zip(prompts, openings, strict=True)
    ]
    ttft = sorted(first - start for start, first, _ in alone)
    return {
        "ttft_ms_p50": round(1000 * ttft[len(ttft) // 2], 1),
        "opening_matches_hf": round(sum(same) / len(same), 2),
        "decode_tokens_per_s_b1": round(len(prompts) * (tokens - 1) / decode_s, 1),
        "aggregate_tokens_per_s_8_streams": round(len(prompts) * tokens / wall, 1),
        "ttft_ms_p50_8_streams": round(
            1000 * sorted(f - s for s, f, _ in together)[len(together) // 2], 1
        ),
    }


def bench_llama_cpp(prompts: list[str], tokens: int, threads: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from llm_chat.convert import packaged_gguf

    llm = Llama(str(packaged_gguf()), n_ctx=512, n_threads=threads, verbose=False)
    rates, ttft = [], []
    for text in prompts:
        messages = [{"role": "user", "content": text}]
        t0 = time.perf_counter()
        first = None
        count = 0
        for _ in llm.create_chat_completion(
            messages, max_tokens=tokens, temperature=0, stream=True
        ):
            first = first or time.perf_counter()
            count += 1
        ttft.append(first - t0)
        rates.append((count - 1) / (time.perf_counter() - first))
    return {"ttft_ms_p50": round(1000 * sorted(ttft)[len(ttft) // 2], 1),
            "decode_tokens_per_s_b1": round(sum(rates) / len(rates), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="*", default=["native", "native-int8", "onnx-int8"],
                        help="also: transformers, onnx")  # fmt: skip
    args = parser.parse_args()

    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    prompts = [chat_ids(tokenizer, p) for p in PROMPTS]
    results = {"model": str(MODEL), "threads": args.threads, "tokens": args.tokens,
               "prompts": len(prompts), "hf_generate": bench_hf(tokenizer, prompts, args.tokens)}  # fmt: skip
    base = results["hf_generate"]
    for kind in args.backends:
        r = bench_engine(kind, tokenizer, prompts, args.tokens, base["openings"])
        r["b1_x"] = round(r["decode_tokens_per_s_b1"] / base["decode_tokens_per_s_b1"], 2)
        r["aggregate_x_vs_sequential"] = round(
            r["aggregate_tokens_per_s_8_streams"] / base["aggregate_tokens_per_s_8_sequential"], 2
        )
        r["aggregate_x_vs_static_batch"] = round(
            r["aggregate_tokens_per_s_8_streams"] / base["aggregate_tokens_per_s_8_static_batch"], 2
        )
        results[f"engine_{kind}"] = r
        print(kind, r, flush=True)
    if (cpp := bench_llama_cpp(PROMPTS, args.tokens, args.threads)) is not None:
        cpp["b1_x"] = round(cpp["decode_tokens_per_s_b1"] / base["decode_tokens_per_s_b1"], 2)
        results["llama_cpp"] = cpp
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
