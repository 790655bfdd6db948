"""The LLM chat engines' serving features (issue 14), one run, the same threads throughout:

- prefix cache: a support chat (a long system prompt, four earlier exchanges, a question) is
  answered, then its second turn (that history, the answer, a new question) is sent: the second
  turn's time to first token with the prefix cache on and off, on OpenVINO and native;
- chunked prefill: 4 streams decode greedily, then a 1,500-token prompt arrives: the gaps
  between the running streams' tokens from its arrival to its first token (p50, p99, max), with
  OpenVINO's chunked prefill (dynamic_split_fuse, 256 tokens a step, as load_pipeline sets it),
  without it (the whole prompt in one step), and the same two on the native engine (256-token
  chunks between decode steps, or the whole prompt);
- structured output: decode tokens/s with and without a JSON schema (nested, bounded), batch 1
  and 4, on OpenVINO and native; and whether the schema's outputs parse and validate.

Compared configurations run interleaved, repetition by repetition (the cores are shared).
Token times come from the engines' observer hooks, where vllm:time_to_first_token_seconds and
vllm:inter_token_latency_seconds are measured. Writes reports/llm_chat/features.json.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from bench_grammar import PROMPTS, streams
from llm_engines import MODEL, chat_ids
from llm_features_chunked import bench_chunked
from llm_features_setup import (
    BOUNDED,
    OV_DIR,
    Setup,
    answer,
    conversation,
    native_engine,
    ov_engine,
    stop_kept,
    turn,
)

from llm_chat.sampling import SamplingParams

OUT = Path("reports/llm_chat/features.json")


async def gather(*awaitables) -> list:  # asyncio.gather needs a running loop to start in
    return await asyncio.gather(*awaitables)


def bench_prefix(s: Setup, reps: int, answer_tokens: int) -> dict:
    from llm_chat.ov_config import BLOCK_TOKENS
    from llm_chat.prefix_cache import shared_prefix

    def template(messages: list[dict]) -> list[int]:
        return s.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    engines = {}
    for on in (True, False):
        engines["openvino-int8", on] = ov_engine(s, slots=1, eos=s.eos, prefix_caching=on)
        engines["native", on] = partial(native_engine, s, slots=1, eos=s.eos, prefix_caching=on)
    rows: dict[tuple, list[dict]] = {key: [] for key in engines}
    try:
        for rep in range(reps + 1):  # repetition 0 warms each engine up
            for (name, on), made in engines.items():
                with turn(made) as engine:
                    record, first = engine.observer, template(conversation(rep))
                    params = SamplingParams(max_tokens=answer_tokens, temperature=0)
                    text = asyncio.run(answer(engine, first, params))
                    ttft_first = record.first[-1][1]
                    second = template(conversation(rep, text))
                    asyncio.run(answer(engine, second, SamplingParams(max_tokens=1, temperature=0)))
                # Native reports its cached tokens; OpenVINO 2026.4 does not: there, the whole
                # cache blocks the second prompt shares with the first turn's tokens.
                seen = first + s.tokenizer.encode(text, add_special_tokens=False)
                blocks = shared_prefix(seen, second) // BLOCK_TOKENS * BLOCK_TOKENS
                cached = record.cached[-1] if record.cached else blocks
                row = {
                    "ttft_first_turn_ms": 1000 * ttft_first,
                    "ttft_second_turn_ms": 1000 * record.first[-1][1],
                    "prompt_tokens_first_turn": len(first),
                    "prompt_tokens_second_turn": len(second),
                    "cached_tokens": cached if on else 0,
                }
                if rep:
                    rows[name, on].append(row)
                print(
                    f"prefix rep {rep} {name} cache {'on' if on else 'off'}: first turn "
                    f"{row['ttft_first_turn_ms']:.0f} ms, second {row['ttft_second_turn_ms']:.0f} "
                    f"ms ({len(second)} tokens, {row['cached_tokens']} cached)",
                    flush=True,
                )
    finally:
        stop_kept(engines.values())
    result: dict = {
        "repetitions": reps,
        "answer_tokens": answer_tokens,
        "cached_tokens": "native: as its engine reports them; openvino-int8: not reported by "
        f"OpenVINO GenAI 2026.4, the whole {BLOCK_TOKENS}-token cache blocks the second prompt "
        "shares with the first turn's prompt and answer",
    }
    for (name, on), done in rows.items():
        median = {f"{k}_median": round(statistics.median(r[k] for r in done), 1) for k in done[0]}
        result.setdefault(name, {})["on" if on else "off"] = median | {
            "ttft_second_turn_ms": [round(r["ttft_second_turn_ms"], 1) for r in done]
        }
    for r in (result["openvino-int8"], result["native"]):
        on, off = (r[k]["ttft_second_turn_ms_median"] for k in ("on", "off"))
        r["second_turn_speedup"] = round(off / on, 2)
    return result


def bench_decode(s: Setup, tokens: int, repeats: int) -> dict:
    import jsonschema_rs

    from llm_chat.grammar import json_schema, lower

    fmt = lower(json_schema(BOUNDED))  # as the service passes it: compact JSON's EBNF
    engines = {
        "openvino-int8": ov_engine(s, slots=4, eos=s.eos, max_len=512),
        "native": native_engine(s, slots=4, eos=s.eos, max_len=512),
    }
    prompts = [chat_ids(s.tokenizer, p) for p in PROMPTS]
    configs = {"free": None, "json_schema": fmt}
    best: dict[str, dict] = {}
    valid = jsonschema_rs.validator_for(BOUNDED)
    result: dict = {"tokens": tokens, "repeats": repeats, "schema": BOUNDED}
    try:
        for engine in engines.values():  # warm-up, and the schema's compilation
            for grammar in configs.values():
                params = SamplingParams(max_tokens=8, temperature=0, grammar=grammar)
                asyncio.run(streams(engine, prompts[:1], params))
        # Interleaved, best of `repeats`: the cores are shared, and contention only slows down.
        for rep in range(repeats):
            for name, engine in engines.items():
                for label, grammar in configs.items():
                    params = SamplingParams(max_tokens=tokens, temperature=0, grammar=grammar)
                    for batch in (1, 4):
                        r = asyncio.run(streams(engine, prompts[:batch], params))
                        key = f"{name}/{label}_batch_{batch}"
                        rate = r["aggregate_tokens_per_s"]
                        if key not in best or rate > best[key]["aggregate_tokens_per_s"]:
                            best[key] = r
                print(f"decode repeat {rep} {name} done", flush=True)
        for name, engine in engines.items():  # to its end: do the 4 schema outputs validate?
            params = SamplingParams(max_tokens=256, temperature=0, grammar=fmt)
            texts = asyncio.run(gather(*[answer(engine, p, params) for p in prompts]))
            result[f"{name}/schema_outputs_valid"] = sum(valid.is_valid(parsed(t)) for t in texts)
    finally:
        for engine in engines.values():
            engine.stop()
    for key, r in best.items():
        if "json_schema" in key:
            free = best[key.replace("json_schema", "free")]["decode_tokens_per_s_per_stream"]
            r["vs_free"] = round(r["decode_tokens_per_s_per_stream"] / free, 2)
    return result | best


def parsed(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None  # validates against no object schema


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--parts",
        nargs="*",
        default=["prefix", "chunked", "decode"],
        choices=["prefix", "chunked", "decode"],
    )
    parser.add_argument("--reps", type=int, default=5, help="chats per prefix-cache setting")
    parser.add_argument("--answer-tokens", type=int, default=48, help="the first turn's answer")
    parser.add_argument("--episodes", type=int, default=3, help="long-prompt arrivals per setting")
    parser.add_argument("--long-tokens", type=int, default=1500, help="the arriving prompt")
    parser.add_argument("--warm", type=int, default=16, help="tokens each stream has first")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per decode stream")
    parser.add_argument("--repeats", type=int, default=3, help="decode runs, the best is kept")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import openvino_genai
    from transformers import AutoTokenizer, GenerationConfig

    if not OV_DIR.exists():
        raise SystemExit(f"{OV_DIR} missing: dvc repro llm_export_openvino")
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    configured = GenerationConfig.from_pretrained(MODEL).eos_token_id
    eos = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    s = Setup(tokenizer, eos - {None}, args.threads)
    results: dict = {
        "model": str(MODEL),
        "openvino": str(OV_DIR),
        "threads": args.threads,
        "openvino_genai": openvino_genai.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    t0 = time.perf_counter()
    if "prefix" in args.parts:
        results["prefix_cache"] = bench_prefix(s, args.reps, args.answer_tokens)
    if "chunked" in args.parts:
        results["chunked_prefill"] = bench_chunked(s, args.episodes, args.long_tokens, args.warm)
    if "decode" in args.parts:
        results["structured_output"] = bench_decode(s, args.tokens, args.repeats)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out} in {results['seconds']} s")


if __name__ == "__main__":
    main()
