"""The README's llm-features block, from reports/llm_chat/features.json
(`benchmarks/bench_llm_features.py`); results_table.py renders it with the other blocks."""

import json
from pathlib import Path

FEATURES = Path("reports/llm_chat/features.json")


def llm_features() -> str:
    r = json.loads(FEATURES.read_text())
    load = f"{r['load_average_start'][0]} at the start, {r['load_average_end'][0]} at the end"
    lines = [
        f"Serving features (`benchmarks/bench_llm_features.py`: {r['threads']} threads, "
        f"load average {load}, compared settings interleaved; "
        "`reports/llm_chat/features.json`):"
    ]
    if p := r.get("prefix_cache"):
        lines += [
            "",
            f"| a support chat's second turn, first token (median of {p['repetitions']}) "
            "| prefix cache on | off | speed-up | prompt tokens | of them cached | first "
            "turn on / off |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, how in (("openvino-int8", "estimated*"), ("native", "as reported")):
            if x := p.get(name):
                on, off = x["on"], x["off"]
                lines.append(
                    f"| {name} | {on['ttft_second_turn_ms_median']:.0f} ms "
                    f"| {off['ttft_second_turn_ms_median']:.0f} ms | {x['second_turn_speedup']}x "
                    f"| {on['prompt_tokens_second_turn_median']:.0f} "
                    f"| {on['cached_tokens_median']:.0f} ({how}) "
                    f"| {on['ttft_first_turn_ms_median']:.0f} "
                    f"/ {off['ttft_first_turn_ms_median']:.0f} ms |"
                )
        lines += [
            "",
            "\\* OpenVINO GenAI 2026.4 does not report cached tokens: the whole 32-token "
            "cache blocks the second prompt shares with the first turn's prompt and answer.",
        ]
    if c := r.get("chunked_prefill"):
        names = {
            "openvino_chunked": "openvino-int8, chunked prefill (256 tokens a step)",
            "openvino_unchunked": "openvino-int8, the whole prompt in one step",
            "native_chunked": "native, chunked prefill (256 tokens a step)",
            "native_unchunked": "native, the whole prompt between two steps",
            "native": "native (prefills a prompt whole between two steps)",
        }
        lines += [
            "",
            f"| {c['streams']} streams decoding while a {c['prompt_tokens']:,}-token "
            "prompt arrives: their gaps between tokens until its first token | p50 | p99 "
            "| max | steady p50 | the prompt's first token |",
            "|---|---|---|---|---|---|",
        ]
        for key, label in names.items():
            if x := c.get(key):
                w = x["during_arrival"]
                lines.append(
                    f"| {label} | {w['p50_ms']:.0f} ms | {w['p99_ms']:.0f} ms "
                    f"| {w['max_ms']:.0f} ms | {x['steady']['p50_ms']:.0f} ms "
                    f"| {x['long_prompt_ttft_ms_median']:.0f} ms |"
                )
    if d := r.get("structured_output"):
        lines += [
            "",
            f"| decode tokens/s per stream, greedy, {d['tokens']} tokens | free b1 "
            "| JSON schema b1 | free b4 | JSON schema b4 | schema outputs that validate |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("openvino-int8", "native"):
            if f"{name}/free_batch_1" not in d:
                continue
            cells = []
            for b in (1, 4):
                free, schema = d[f"{name}/free_batch_{b}"], d[f"{name}/json_schema_batch_{b}"]
                cells += [
                    f"{free['decode_tokens_per_s_per_stream']}",
                    f"{schema['decode_tokens_per_s_per_stream']} ({schema['vs_free']}x)",
                ]
            lines.append(
                f"| {name} | {' | '.join(cells)} | {d[f'{name}/schema_outputs_valid']} of 4 |"
            )
    return "\n".join(lines)
