"""scripts/plots.py's LLM figure: the engines' continuous batching, from the LLM decoding
benchmark (benchmarks/bench_llm_chat.py)."""

from pathlib import Path

from plots_common import pyplot, read_json, save


def llm_streams(reports: Path, out: Path) -> None:
    """Continuous batching: aggregate tokens/s and first-token latency against concurrent
    streams for each engine (benchmarks/bench_llm_chat.py)."""
    plt = pyplot()
    b = read_json(reports / "llm_chat" / "benchmark.json")
    fig, (tps, ttft) = plt.subplots(1, 2, figsize=(8.6, 3.2), layout="constrained")
    for key, engine in b.items():
        if not key.startswith("engine_"):
            continue
        streams = [
            1,
            *sorted(
                int(k.split("_")[-2])
                for k in engine
                if k.startswith("aggregate_tokens_per_s_") and k.endswith("streams")
            ),
        ]
        rates = [engine["decode_tokens_per_s_b1"]]
        rates += [engine[f"aggregate_tokens_per_s_{n}_streams"] for n in streams[1:]]
        waits = [engine["ttft_ms_p50"]]
        waits += [engine[f"ttft_ms_p50_{n}_streams"] for n in streams[1:]]
        label = key.removeprefix("engine_")
        tps.plot(streams, rates, marker="o", label=label)
        ttft.plot(streams, waits, marker="o", label=label)
    hf = b.get("hf_generate", {})
    if "aggregate_tokens_per_s_8_static_batch" in hf:  # the baseline the engines replace
        tps.scatter(
            [8],
            [hf["aggregate_tokens_per_s_8_static_batch"]],
            marker="x",
            color="black",
            label="HF generate, static batch 8",
            zorder=3,
        )
    for ax in (tps, ttft):
        ax.set(xscale="log", xlabel="concurrent streams")
        ax.set_xticks([1, 8, 16, 32], labels=["1", "8", "16", "32"])
    tps.set(
        ylabel="aggregate tokens/s", title=f"{b['tokens']} tokens a stream, {b['threads']} threads"
    )
    ttft.set(ylabel="time to first token p50 (ms)", title="first token")
    tps.legend(fontsize=7)
    save(fig, out)
