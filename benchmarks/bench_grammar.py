"""Grammar-constrained decoding cost, on the real vocabulary of models/llm_chat/base (SmolLM2,
49152 tokens):

- the per-token mask cost of each library over a realistic output (a pretty-printed JSON
  document that follows a nested schema: objects, an array of objects, enums, numbers, a
  pattern): `fill` computes the allowed-token bitmask, `apply` sets the other logits to -inf
  (xgrammar's CPU kernel for both libraries: they share the bitmask layout), `accept` advances
  the matcher by the token. xgrammar is what the engines use; llguidance is measured where it
  is importable (`pip install --target /tmp/llg llguidance`: it is not a project dependency);
- the native engine's decode speed, greedy, with and without that schema, at batch 1 and 4.

The choice of library rests on the mask cost against the decode time per token: the mask must
not halve decode speed. Writes reports/llm_chat/grammar.json.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from grammar_masks import DOCUMENT, SCHEMA, bench_llguidance, bench_xgrammar

MODEL = Path("models/llm_chat/base")
OUT = Path("reports/llm_chat/grammar.json")
PROMPTS = [
    "Describe a fictional software engineer as a JSON object.",
    "Give me a JSON record for a researcher who lives in Paris.",
    "Write a JSON profile of a designer with three skills.",
    "Return a JSON object describing a manager in Tokyo.",
]


async def streams(engine, prompts: list[list[int]], params) -> dict:
    async def one(prompt: list[int]) -> tuple[float, float, int, str]:
        first, text, count = None, "", 0
        async for delta in engine.stream(prompt, params):
            first = first or time.perf_counter()
            text, count = text + delta.text, delta.tokens
        return first, time.perf_counter(), count, text

    t0 = time.perf_counter()
    done = await asyncio.gather(*[one(p) for p in prompts])
    wall = time.perf_counter() - t0
    decode = [(n - 1) / (end - first) for first, end, n, _ in done if n > 1]
    return {
        "aggregate_tokens_per_s": round(sum(n for *_, n, _ in done) / wall, 1),
        "decode_tokens_per_s_per_stream": round(statistics.fmean(decode), 1),
        "tokens": [n for *_, n, _ in done],
        "text_0": done[0][3],
    }


def bench_decode(tokenizer, tokens: int, threads: int, repeats: int) -> dict:
    from llm_chat.backends import load_backend
    from llm_chat.engine import Engine
    from llm_chat.grammar import json_schema
    from llm_chat.sampling import SamplingParams

    # loaded on the engine's thread (see Engine). End-of-sequence ignored, as in bench_llm_chat:
    # free runs write `tokens` tokens each; a schema run ends where its JSON does (its grammar's
    # stop token), or at `tokens`.
    build = partial(load_backend, "native", MODEL, slots=4, max_len=512, threads=threads)
    engine = Engine(build, tokenizer, eos=set(), max_queue=4)
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
        for p in PROMPTS
    ]
    configs = [("free", None), ("json_schema", json_schema(SCHEMA))]
    results: dict[str, dict] = {}
    try:
        for _, grammar in configs:  # warm-up, and the schema's compilation
            params = SamplingParams(max_tokens=8, temperature=0, grammar=grammar)
            asyncio.run(streams(engine, prompts[:1], params))
        # Interleaved, best of `repeats`: the cores are shared, and contention only slows down.
        for _ in range(repeats):
            for label, grammar in configs:
                params = SamplingParams(max_tokens=tokens, temperature=0, grammar=grammar)
                for batch in (1, 4):
                    r = asyncio.run(streams(engine, prompts[:batch], params))
                    best = results.setdefault(f"{label}_batch_{batch}", r)
                    if r["aggregate_tokens_per_s"] > best["aggregate_tokens_per_s"]:
                        results[f"{label}_batch_{batch}"] = r
    finally:
        engine.stop()
    for batch in (1, 4):
        free, schema = results[f"free_batch_{batch}"], results[f"json_schema_batch_{batch}"]
        schema["vs_free"] = round(
            schema["decode_tokens_per_s_per_stream"] / free["decode_tokens_per_s_per_stream"], 2
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64, help="tokens per decode stream")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5, help="mask passes over the document")
    parser.add_argument("--repeats", type=int, default=3, help="decode runs, the best is kept")
    parser.add_argument(
        "--llguidance-path",
        type=Path,
        default=Path("/tmp/llg"),
        help="where `pip install --target` put llguidance, if anywhere",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from transformers import AutoConfig, AutoTokenizer

    if args.llguidance_path.exists():
        sys.path.append(str(args.llguidance_path))
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    vocab = AutoConfig.from_pretrained(MODEL).vocab_size  # the logits' width
    document = json.dumps(DOCUMENT, indent=2)
    tokens = tokenizer.encode(document, add_special_tokens=False)
    results = {
        "model": str(MODEL),
        "vocab_size": vocab,
        "threads": args.threads,
        "document_tokens": len(tokens),
        "passes": args.passes,
        "xgrammar": bench_xgrammar(tokenizer, vocab, tokens, args.passes),
        "llguidance": bench_llguidance(tokenizer, vocab, tokens, args.passes),
        "decode": bench_decode(tokenizer, args.tokens, args.threads, args.repeats),
    }
    # The share of a decode step the masks take: one mask per stream, after each batched step.
    mask_s = results["xgrammar"]["mask"]["mean_ms"] / 1000
    for batch in (1, 4):
        rate = results["decode"][f"free_batch_{batch}"]["decode_tokens_per_s_per_stream"]
        results[f"xgrammar_mask_share_of_a_free_step_batch_{batch}"] = round(
            batch * mask_s * rate, 4
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print_table(results)
    shares = [results[f"xgrammar_mask_share_of_a_free_step_batch_{b}"] for b in (1, 4)]
    print(
        f"xgrammar's masks: {shares[0]:.2%} of a free decode step at batch 1, {shares[1]:.2%} at 4"
    )
    print(f"wrote {args.out}")


def print_table(results: dict) -> None:
    print(
        f"\nmask cost per token, {results['document_tokens']}-token document, "
        f"vocabulary {results['vocab_size']} (ms: mean / p50 / p99)"
    )
    print(f"{'library':<12} {'fill + apply':>24} {'fill':>10} {'accept':>10} {'compile':>10}")
    for name in ("xgrammar", "llguidance"):
        r = results[name]
        if isinstance(r, str):
            print(f"{name:<12} {r}")
            continue
        mask = r["mask"]
        print(
            f"{name:<12} {mask['mean_ms']:>8.3f} / {mask['p50_ms']:.3f} / {mask['p99_ms']:.3f}"
            f" {r['fill']['mean_ms']:>10.3f} {r['accept']['mean_ms']:>10.3f}"
            f" {r['compile_ms']:>10.1f}"
        )
    print("\nnative engine, greedy (tokens/s: decode per stream / aggregate)")
    for key, r in results["decode"].items():
        versus = f"  x{r['vs_free']} of free" if "vs_free" in r else ""
        print(
            f"{key:<20} {r['decode_tokens_per_s_per_stream']:>8.1f} / "
            f"{r['aggregate_tokens_per_s']:.1f}  tokens {r['tokens']}{versus}"
        )


if __name__ == "__main__":
    main()
