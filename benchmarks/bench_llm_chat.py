"""LLM decoding benchmark, one run, same prompts and thread count for every contender:

- HF `generate` (the baseline): batch 1, one prompt after another; and a static batch of 8
  (left-padded), the best `generate` can do for 8 streams;
- our engine on each backend: one stream alone, then 8, 16 and 32 concurrent streams
  (continuous batching); the openvino backends run OpenVINO GenAI's pipeline (ov_engine.py);
- llama.cpp, batch 1, where `llama-cpp-python` is installed (`make llama-cpp`: a cached,
  optional build): the base model converted to Q8_0 and F16, and the packaged Q4_1;
- the HTTP server on the default backend: 16 streaming clients, against the same 16 streams in
  process (both stop at end-of-turn there, as a served answer does).

Reported: decode tokens/s at batch 1 (after the first token), aggregate tokens/s per stream
count, time to first token p50/p99 under load. Greedy, end-of-turn ignored (except in the HTTP
pair), so every contender writes exactly the same number of tokens. Writes
reports/llm_chat/benchmark.json. Run after `dvc repro llm_convert llm_export_openvino`.
"""

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from llm_engines import MODEL, ONNX, chat_ids, make_engine, ov_export, percentile, streams
from llm_http import bench_http
from llm_llama_cpp import bench_llama_cpp, gguf_files

STREAMS = (8, 16, 32)
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


def bench_hf(tokenizer, prompts: list[list[int]], tokens: int, threads: int) -> dict:
    from transformers import AutoModelForCausalLM

    # on this thread (`on_own_thread`): the cap is set where the work runs, and the JSON
    # records what PyTorch reports here rather than what was asked for
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id or 0

    def generate(batch: list[list[int]], n: int) -> float:
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=pad,
            )
        return time.perf_counter() - t0

    generate(prompts[:1], 4)  # warm-up
    with torch.inference_mode():  # greedy openings: the reference the backends must write too
        openings = [
            tokenizer.decode(
                model.generate(
                    torch.tensor([p]), max_new_tokens=12, do_sample=False, pad_token_id=pad
                )[0, len(p) :]
            )
            for p in prompts
        ]
    ttft = [generate([p], 1) for p in prompts]
    total = sum(generate([p], tokens) for p in prompts)
    batch8 = generate(prompts, tokens)
    decode_s = total - sum(ttft)
    return {
        "threads": torch.get_num_threads(),
        "ttft_ms_p50": round(1000 * sorted(ttft)[len(ttft) // 2], 1),
        "decode_tokens_per_s_b1": round(len(prompts) * (tokens - 1) / decode_s, 1),
        "aggregate_tokens_per_s_8_sequential": round(len(prompts) * tokens / total, 1),
        "aggregate_tokens_per_s_8_static_batch": round(len(prompts) * tokens / batch8, 1),
        "openings": openings,
    }


def bench_engine(
    kind: str, tokenizer, prompts: list[list[int]], tokens: int, openings: list[str], threads: int
) -> dict:
    engine = make_engine(kind, tokenizer, max(STREAMS), threads, eos=set())
    try:
        asyncio.run(streams(engine, prompts[:1], 4))  # warm-up
        alone = [asyncio.run(streams(engine, [p], tokens)) for p in prompts]
        loaded = {n: asyncio.run(streams(engine, (prompts * n)[:n], tokens)) for n in STREAMS}
    finally:
        engine.stop()
    # A speed figure means nothing if the text is wrong: the share of prompts whose first 24
    # characters are HF's greedy ones (INT8 may drift later; a broken export differs at once).
    texts = [a["texts"][0] for a in alone]
    same = [t.strip()[:24] == o.strip()[:24] for t, o in zip(texts, openings, strict=True)]
    result = {
        "ttft_ms_p50": round(percentile([a["ttft_ms_p50"] for a in alone], 0.5), 1),
        "opening_matches_hf": round(sum(same) / len(same), 2),
        "decode_tokens_per_s_b1": round(
            len(prompts) * (tokens - 1) / sum(a["decode_s"][0] for a in alone), 1
        ),
    }
    for n, r in loaded.items():
        result[f"aggregate_tokens_per_s_{n}_streams"] = r["aggregate_tokens_per_s"]
        result[f"ttft_ms_p50_{n}_streams"] = r["ttft_ms_p50"]
        result[f"ttft_ms_p99_{n}_streams"] = r["ttft_ms_p99"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--backends",
        nargs="*",
        default=[
            "openvino-int8",
            "openvino-int8-bf16",
            "openvino-int4",
            "native",
            "native-int8",
            "onnx-int8",
        ],
        help="also: transformers, onnx, openvino-int4-bf16",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--http", default="openvino-int8", help="the backend served for the HTTP run; '' skips it"
    )
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from llm_chat.backends import on_own_thread

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    prompts = [chat_ids(tokenizer, p) for p in PROMPTS]
    results = {
        "model": str(MODEL),
        "threads": args.threads,
        "tokens": args.tokens,
        "prompts": len(prompts),
        "hf_generate": on_own_thread(bench_hf, tokenizer, prompts, args.tokens, args.threads),
    }
    base = results["hf_generate"]
    for kind in args.backends:
        needs = (
            ov_export(kind)[0] if kind.startswith("openvino") else ONNX if "onnx" in kind else MODEL
        )
        if not needs.exists():  # its export stage has not run: say so rather than fail the run
            print(f"{kind}: skipped, {needs} missing (dvc repro)", flush=True)
            continue
        r = bench_engine(kind, tokenizer, prompts, args.tokens, base["openings"], args.threads)
        r["threads"] = args.threads  # torch/ORT intra-op or OpenVINO INFERENCE_NUM_THREADS
        r["b1_x"] = round(r["decode_tokens_per_s_b1"] / base["decode_tokens_per_s_b1"], 2)
        r["aggregate_x_vs_sequential"] = round(
            r["aggregate_tokens_per_s_8_streams"] / base["aggregate_tokens_per_s_8_sequential"], 2
        )
        r["aggregate_x_vs_static_batch"] = round(
            r["aggregate_tokens_per_s_8_streams"] / base["aggregate_tokens_per_s_8_static_batch"], 2
        )
        results[f"engine_{kind}"] = r
        print(kind, r, flush=True)
    if importlib.util.find_spec("llama_cpp") is None:
        print("llama.cpp: skipped, llama-cpp-python not installed (make llama-cpp)", flush=True)
    else:
        for name, gguf in gguf_files().items():
            # In a child process: a crash in llama.cpp's native code (a segfault was seen with
            # 0.3.36) is reported here instead of losing every other figure of the run.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                job = pool.submit(
                    bench_llama_cpp, gguf, PROMPTS, args.tokens, args.threads, base["openings"]
                )
                try:
                    r = job.result()
                except BrokenProcessPool:
                    print(f"{name}: llama.cpp crashed; no figures", flush=True)
                    continue
            r["b1_x"] = round(r["decode_tokens_per_s_b1"] / base["decode_tokens_per_s_b1"], 2)
            results[name] = r
            print(name, r, flush=True)
    if args.http:
        results["http"] = {"backend": args.http} | bench_http(
            args.http, tokenizer, PROMPTS, args.tokens, args.threads
        )
        print("http", results["http"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
