"""The README's LLM engine block: decoding speed per backend (`benchmarks/bench_llm_chat.py`)
and quality per backend and precision (`dvc repro llm_quality`); results_table.py renders it."""

import json
from pathlib import Path

LLM = Path("reports/llm_chat")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def llm_engine() -> str:
    """Decoding speed per backend (`benchmarks/bench_llm_chat.py`) and quality per backend and
    precision (`dvc repro llm_quality`)."""
    b, q = _load(LLM / "benchmark.json"), _load(LLM / "quality.json")["base"]
    lines = [
        f"Decoding (`benchmarks/bench_llm_chat.py`: {b['prompts']} prompts x {b['tokens']} "
        f"tokens, {b['threads']} threads, `reports/llm_chat/benchmark.json`):",
        "",
        "| backend | tokens/s b1 | 8 streams | 16 | 32 | first token b1 | first token p50/p99, 8 "
        "streams | opening as HF's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    hf = b["hf_generate"]
    lines.append(
        f"| HF generate fp32 | {hf['decode_tokens_per_s_b1']} | "
        f"{hf['aggregate_tokens_per_s_8_static_batch']} (static batch) | | "
        f"| {hf['ttft_ms_p50']:.0f} ms | | 1.0 |"
    )
    for key, r in b.items():
        if key.startswith("engine_") and "decode_tokens_per_s_b1" in r:
            lines.append(
                f"| {key.removeprefix('engine_')} | {r['decode_tokens_per_s_b1']} "
                f"| {r['aggregate_tokens_per_s_8_streams']} "
                f"| {r['aggregate_tokens_per_s_16_streams']} "
                f"| {r['aggregate_tokens_per_s_32_streams']} | {r['ttft_ms_p50']:.0f} ms "
                f"| {r['ttft_ms_p50_8_streams']:.0f} / {r['ttft_ms_p99_8_streams']:.0f} ms "
                f"| {r['opening_matches_hf']} |"
            )
    for key, r in b.items():  # batch 1 only: llama-cpp-python serves one sequence at a time
        if key.startswith("llama.cpp"):
            ttft = f"{r['ttft_ms_p50']:.0f} ms"
            row = [key, r["decode_tokens_per_s_b1"], "", "", "", ttft, "", r["opening_matches_hf"]]
            lines.append("| " + " | ".join(map(str, row)) + " |")
    if any(key.startswith("llama.cpp") for key in b):
        lines += [
            "",
            "llama.cpp rows: batch 1 only (llama-cpp-python decodes one sequence at a time), its "
            "own chat template and sampler, loaded by `load_llama` (ggml's repacked weight "
            "layouts off: with them its int8 kernels crashed here); the packaged Q4_1 is a "
            "smaller quantisation of the same model, not the same weights as the other rows.",
        ]
    if h := b.get("http"):
        lines += [
            "",
            f"Through HTTP ({h['backend']}, {h['clients']} streaming clients): "
            f"{h['aggregate_tokens_per_s']} tokens/s, {h['vs_in_process']}x the in-process "
            f"figure, first token p50 {h['ttft_ms_p50']:.0f} ms / p99 {h['ttft_ms_p99']:.0f} ms, "
            f"{h['errors']} errors.",
        ]
    lines += [
        "",
        f"Quality (`reports/llm_chat/quality.json`: perplexity on {q['texts']} held-out "
        f"Wikipedia summaries, {q['tokens']} tokens; greedy answers to {q['greedy_prompts']} "
        f"questions against fp32's):",
        "",
        "| backend | perplexity | vs fp32 | same first 24 characters | identical |",
        "|---|---|---|---|---|",
    ]
    for name, r in q["rows"].items():
        ppl = f"{r['perplexity']:.3f}" if "perplexity" in r else ""
        delta = f"{r['perplexity_vs_fp32']:+.1%}" if "perplexity" in r and name != "hf-fp32" else ""
        g = r.get("greedy_vs_fp32", {})
        lines.append(
            f"| {name} | {ppl} | {delta} | {g.get('first_24_chars', '')} "
            f"| {g.get('identical', '')} |"
        )
    return "\n".join(lines)
