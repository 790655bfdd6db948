"""Renders the README's results block from the files the pipeline writes (never typed by hand).

python scripts/results_table.py              # print the markdown
python scripts/results_table.py --write README.md   # replace the block between the markers
"""

import argparse
import json
from pathlib import Path

from image_sizes import REPORT as IMAGES
from image_sizes import render as render_images
from results_demo import DEMO, demo_timings
from results_distill import DISTILL, distillation
from results_llm import LLM, llm_engine
from results_llm_features import FEATURES, llm_features
from results_natural import RAG as NATURAL
from results_natural import rag_natural, search_natural
from results_rag import rag_chatbot

REPORTS, MODELS = Path("reports/image_classifier"), Path("models/image_classifier")
SEARCH_BENCH = Path("reports/semantic_search/benchmark.json")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def image_classifier() -> str:
    champion = load(MODELS / "champion.json")["champion"]
    source = load(REPORTS / "data_report.json")["source"]
    test_images = load(REPORTS / "resnet" / "metrics.json")["samples"]
    lines = [
        f"**Image classifier** ({source}, {test_images} held-out test images; champion picked on "
        f"validation: `{champion}`, the INT8 stem too; every figure below is on the test split, "
        "from `reports/image_classifier/*/metrics.json` and `quantize.json`)",
        "",
        "| model | test acc | macro-F1 | ECE | ONNX INT8 acc | INT8 size | INT8 vs torch b1 "
        "| INT8 vs torch b32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("resnet", "efficientnet"):
        m, q = load(REPORTS / name / "metrics.json"), load(REPORTS / name / "quantize.json")
        int8, b = q["variants"]["onnx_int8"], q["batch_size"]
        lines.append(
            f"| {name} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} | {m['ece']:.3f} "
            f"| {int8['accuracy']:.2%} | {int8['size_bytes'] / 1e6:.2f} MB "
            f"| {int8['speedup_batch1']:.2f}x | {int8[f'speedup_batch{b}']:.2f}x |"
        )
    lines += [
        "",
        f"Speed-ups: same {q['threads']} threads, batch 1 latency p50 and batch {b} "
        "throughput, ONNX Runtime INT8 against PyTorch fp32 eager.",
    ]
    # `make bench` (benchmarks/bench_image_classifier.py) measures the same comparison again
    # into reports/image_classifier/benchmark.json; quoting both gave the README two different
    # INT8-vs-torch figures for one model (4.42x here, 6.5x from its images/s), so every
    # speed-up above comes from quantize.json alone and the benchmark's file is not quoted.
    lines += [
        "",
        "`make bench` re-measures these variants (`reports/image_classifier/benchmark.json`, "
        "not quoted: each speed-up is stated once, from `quantize.json`).",
    ]
    return "\n".join(lines)


def _encoder_rows(e: dict) -> list[str]:
    lines = [
        "",
        f"`make bench` encoder ({e['sentences']} sentences, {e['threads']} threads, "
        f"through `{e.get('harness', 'its own timing loop')}`; b32: the sample in one call, "
        "length-sorted by each library; chunked: 32 texts a call, unsorted):",
        "",
        "| encoder | sentences/s b32 | chunked | single query p50 | vs torch b32 | chunked | b1 "
        "| min cosine to torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("sentence_transformers_torch", "onnx_fp32", "onnx_int8"):
        v = e[key]
        lines.append(
            f"| {key} | {v['sentences_per_s_b32']} | {v['sentences_per_s_b32_chunked']} "
            f"| {v['single_ms_p50']} ms | {v.get('throughput_x', 1.0)}x "
            f"| {v.get('chunked_throughput_x', 1.0)}x | {v.get('latency_x', 1.0)}x "
            f"| {v.get('min_cosine_to_torch', '')} |"
        )
    return lines


def _index_rows(indexes: dict | list) -> list[str]:
    """The index table, with how it was measured: the thread cap, the build effort, what the
    queries are and which sizes are synthetic (stated, never left for the reader to guess)."""
    rows = indexes["rows"] if isinstance(indexes, dict) else indexes
    lines = [""]
    if isinstance(indexes, dict):
        setup = indexes["setup"]
        lines += [
            f"Indexes (`{indexes['command']}`): every contender capped at {setup['threads']} "
            f"threads (FAISS OpenMP, numpy BLAS, LanceDB `LANCE_CPU_THREADS`), both HNSW graphs "
            f"built with M={setup['hnsw']['m']}, efConstruction="
            f"{setup['hnsw']['ef_construction']} and searched with ef="
            f"{setup['hnsw']['ef_search']}. Queries: {setup['queries']}. Vectors: "
            f"{setup['base']['real']}; {setup['base']['synthetic']}.",
            "",
        ]
    else:  # a report from before the setup was recorded: say what it did not state
        lines += ["Indexes (queries: indexed vectors plus noise, SYNTHETIC):", ""]
    lines += [
        "| vectors | index | recall@10 vs exact | p50 ms | p99 ms | build s |",
        "|---|---|---|---|---|---|",
    ]
    corpus = rows[0]["vectors"]  # the first size is the real corpus; larger ones are made up

    def size(x: dict) -> str:
        synthetic = x.get("synthetic_vectors", x["vectors"] > corpus)
        return f"{x['vectors']:,}" + (" (synthetic)" if synthetic else "")

    lines += [
        f"| {size(x)} | {x['index']} | {x['recall@10']} | {x['p50_ms']} | {x['p99_ms']} "
        f"| {x['build_s']} |"
        for x in rows
    ]
    return lines


def semantic_search() -> str:
    reports = Path("reports/semantic_search")
    if not (reports / "retrieval.json").exists():
        missing = "**Semantic search**: run `dvc repro` to produce its figures."
        return missing
    r, enc = load(reports / "retrieval.json"), load(reports / "encoder.json")
    documents = load(reports / "data_report.json")["documents"]
    names = {
        "bm25_index": "BM25 (store: bm25s on the in-memory copy)",
        "dense_fp32_exact": "dense fp32 (exact)",
        "dense_int8_exact": "dense INT8 (exact)",
        "dense_index": "dense INT8 (store)",
        "hybrid_index": "hybrid RRF (store)",
    }
    lines = [
        f"**Semantic search** (known-item: {r['queries']} held-out article descriptions as queries "
        f"over {documents:,} Wikipedia summaries; `reports/semantic_search/retrieval.json`)",
        "",
        "| system | nDCG@10 | MRR@10 | R@1 | R@10 | R@100 |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in names.items():
        m = r["systems"][key]
        lines.append(
            f"| {label} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@1']:.3f} "
            f"| {m['recall@10']:.3f} | {m['recall@100']:.3f} |"
        )
    p = enc["parity"]
    lat = r["latency_ms"]
    lines += [
        "",
        f"INT8 vs fp32 nDCG@10: {r['int8_vs_fp32_ndcg_relative']:+.2%}. Cosine to "
        f"sentence-transformers on {p['sentences']} held-out sentences: fp32 min "
        f"{p['fp32']['min_cosine']:.5f}, INT8 min {p['int8']['min_cosine']:.4f} "
        f"(mean {p['int8']['mean_cosine']:.4f}; {enc['int8']['quantized_nodes']} of "
        f"{enc['int8']['quantized_nodes'] + len(enc['int8']['kept_fp32'])} layers INT8).",
        "",
        f"Latency through the Python API (`Retriever.search`, k={lat['k']}, {lat['threads']} "
        "threads, ms):",
        "",
        "| mode | search p50 | search p99 | with query encoding p50 | with query encoding p99 |",
        "|---|---|---|---|---|",
    ]
    for m in ("dense", "bm25", "hybrid"):
        s, t = lat[m]["search"], lat[m]["total"]
        lines.append(f"| {m} | {s['p50']} | {s['p99']} | {t['p50']} | {t['p99']} |")
    return "\n".join(lines)


def search_bench() -> str:
    """`benchmarks/bench_semantic_search.py`'s figures: a block of their own, as the benchmark
    runs apart from the pipeline."""
    b = load(SEARCH_BENCH)
    lines = [
        "**Semantic search speed** (`benchmarks/bench_semantic_search.py`, "
        "`reports/semantic_search/benchmark.json`)"
    ]
    if "encoder" in b:
        lines += _encoder_rows(b["encoder"])
    if "service" in b:
        s = b["service"]
        lines += [
            "",
            f"Service load (`semantic-search serve`, {s['workers']} workers, {s['clients']} "
            f"concurrent clients, mixed modes, {s['seconds']} s): "
            f"{s['requests_per_s']} requests/s, "
            f"{s['errors']} errors of {s['requests']}, p50 {s['latency_ms']['p50']} ms, "
            f"p99 {s['latency_ms']['p99']} ms.",
        ]
    if "indexes" in b:
        lines += _index_rows(b["indexes"])
    return "\n".join(lines)


def llm_chat() -> str:
    reports = Path("reports/llm_chat")
    lines = []
    if (reports / "finetune.json").exists():
        f = load(reports / "finetune.json")
        n = next(iter(f["models"].values()))["examples"]
        lines += [
            f"**LLM chat** fine-tuning, held-out articles ({n['perplexity']} questions for "
            f"perplexity, {n['generated']} answered greedily, {n['pairs']} preference pairs; "
            "`reports/llm_chat/finetune.json`)",
            "",
            "| model | answer perplexity | token F1 | ROUGE-L | preference win rate |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {m['perplexity']} | {m['token_f1']} | {m['rouge_l']} | "
            f"{m['preference_win_rate']} |"
            for name, m in f["models"].items()
        ]
    return "\n".join(lines) if lines else "**LLM chat**: run `dvc repro` to produce its figures."


SOAK = Path("reports/soak.json")


def soak() -> str:
    """The soak benchmark (`benchmarks/bench_soak.py`): one row per service."""
    r = load(SOAK)
    first = next(iter(r.values()))
    lines = [
        f"`benchmarks/bench_soak.py`: {first['clients']} clients, {first['seconds']:.0f} s a "
        "service, valid and hostile requests mixed, tiny models, the load generator on the "
        "same 2 cores (`reports/soak.json`):",
        "",
        "| service | requests | valid: statuses | hostile: statuses | p50 | p99 | RSS start → end "
        "| undesigned answers | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def tally(report: dict, prefix: str) -> str:
        counts: dict[str, int] = {}
        for kind, statuses in report["statuses"].items():
            if kind.startswith(prefix):
                for status, n in statuses.items():
                    counts[status] = counts.get(status, 0) + n
        return ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()))

    for service, x in r.items():
        rss, v = x["rss_mb"], x["verdict"]
        lines.append(
            f"| {service} | {x['requests']} | {tally(x, 'valid')} | {tally(x, 'hostile')} "
            f"| {x['latency_ms']['p50']} ms | {x['latency_ms']['p99']} ms "
            f"| {rss['start']:.0f} → {rss['end']:.0f} MB ({v['rss_growth']:+.1%}) "
            f"| {sum(v['undesigned'].values())} | {'yes' if v['passed'] else 'no'} |"
        )
    return "\n".join(lines)


# Each README block between its markers, rendered only when its source files exist, so a
# machine that ran one benchmark refreshes that block and leaves the others as they are.
BLOCKS = {
    "results": (
        lambda: "\n\n".join([image_classifier(), semantic_search(), llm_chat(), rag_chatbot()]),
        MODELS / "champion.json",
    ),
    "soak": (soak, SOAK),
    "search-bench": (search_bench, SEARCH_BENCH),
    "llm-engine": (llm_engine, LLM / "quality.json"),
    "llm-features": (llm_features, FEATURES),
    "images": (lambda: render_images(json.loads(IMAGES.read_text())), IMAGES),
    # their own blocks: each stage runs on its own, before the whole pipeline has
    "distill": (lambda: "\n".join(distillation()).strip(), DISTILL),
    "natural": (lambda: "\n".join(rag_natural() + search_natural()).strip(), NATURAL),
    "demo-timings": (demo_timings, DEMO),
}


def replace_block(text: str, name: str, block: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    head, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"no {start} marker in the README")
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{block}\n{end}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="a README with the blocks' markers")
    args = parser.parse_args()
    rendered = {name: render() for name, (render, source) in BLOCKS.items() if source.exists()}
    if not args.write:
        print("\n\n".join(rendered.values()))
        return
    text = args.write.read_text()
    for name, block in rendered.items():
        text = replace_block(text, name, block)
    args.write.write_text(text)


if __name__ == "__main__":
    main()
