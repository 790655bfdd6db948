"""Semantic search benchmarks, one run, same thread count for every contender:

1. encoder: sentence-transformers on PyTorch vs our ONNX fp32 and INT8 through
   `mlstack.quantize.compare_variants` (sentences/s at batch 32, single-query latency, cosine);
2. service: `semantic-search serve` under 16 concurrent clients (requests/s, errors, latency);
3. indexes (index_bench.py): exact vs FAISS HNSW vs LanceDB HNSW-SQ and IVF-PQ, one thread cap
   for all, the same HNSW build effort; real held-out queries; at the corpus size and, with
   --vectors, at SYNTHETIC sizes (corpus vectors resampled with noise), labelled so in the JSON.

Writes reports/semantic_search/benchmark.json. Run after `dvc repro`.
"""

import argparse
import asyncio
import json
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np

DATA = Path("data/semantic_search")
ENCODER = Path("models/semantic_search/encoder")
OUT = Path("reports/semantic_search/benchmark.json")


def _encoder_variants(threads: int):
    """sentence-transformers on PyTorch (the reference) and our ONNX fp32 / INT8, as
    `mlstack.quantize` variants: each encodes whatever list it is given, 32 texts a batch."""
    import torch
    from sentence_transformers import SentenceTransformer

    from mlstack.quantize.compare import Variant
    from semantic_search.encoder import VARIANTS, Encoder
    from semantic_search.export import resolve_model

    torch.set_num_threads(threads)
    model = SentenceTransformer(
        str(resolve_model(json.loads((ENCODER / "encoder.json").read_text())["source"])),
        device="cpu",
    )
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    variants = [
        Variant("sentence_transformers_torch", lambda b: model.encode(b, batch_size=32), size)
    ]
    for name in ("fp32", "int8"):
        enc = Encoder(ENCODER, variant=name, threads=threads)
        size = (ENCODER / VARIANTS[name]).stat().st_size
        variants.append(Variant(f"onnx_{name}", partial(enc.encode, batch_size=32), size))
    return variants


def bench_encoder(threads: int, seconds: float = 5.0) -> dict:
    """Through `mlstack.quantize.compare_variants` (equal threads, warm-up, batch-1 latency on
    the same 200 sentences), twice: 32 texts a call in the given order ("chunked"), and the
    whole sample in one call, which each library sorts by length before batching (how a corpus
    is embedded). Quality: the lowest cosine of a variant's embedding to PyTorch's."""
    from mlstack.quantize import compare_variants

    sentences = json.loads((DATA / "parity.json").read_text()) + json.loads(
        (DATA / "calibration.json").read_text()
    )
    variants = _encoder_variants(threads)
    reference = variants[0].predict(sentences)

    def min_cosine(vectors: np.ndarray) -> float:
        a = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        return float(np.min(np.sum(a * b, axis=1)))

    common = {"metric": "min_cosine_to_torch", "threads": threads, "min_seconds": seconds}
    chunked = compare_variants(variants, sentences, min_cosine, batch_size=32, **common)
    whole = compare_variants(  # its latency is not used: one run, one warm-up
        variants,
        sentences,
        min_cosine,
        batch_size=len(sentences),
        latency_runs=1,
        warmup=1,
        **common,
    )
    results: dict = {
        "sentences": len(sentences),
        "threads": threads,
        "harness": "mlstack.quantize.compare_variants",
        "latency_runs": chunked["latency_runs"],
    }
    for name, v in chunked["variants"].items():
        w = whole["variants"][name]
        results[name] = {
            "sentences_per_s_b32": round(w["throughput_per_s"], 1),
            "sentences_per_s_b32_chunked": round(v["throughput_per_s"], 1),
            "single_ms_p50": round(v["latency_ms_p50"], 2),
            "single_ms_p95": round(v["latency_ms_p95"], 2),
            "min_cosine_to_torch": round(v["min_cosine_to_torch"], 5),
            "size_bytes": v["size_bytes"],
            "throughput_x": round(w[f"speedup_batch{len(sentences)}"], 2),
            "chunked_throughput_x": round(v["speedup_batch32"], 2),
            "latency_x": round(v["speedup_batch1"], 2),
        }
    return results


def bench_service(workers: int, clients: int, seconds: float, port: int = 8092) -> dict:
    from mlstack.loadtest import http_load, serve_process

    env = {
        "SEMANTIC_SEARCH_PORT": str(port),
        "SEMANTIC_SEARCH_WORKERS": str(workers),
        "SEMANTIC_SEARCH_ONNX_THREADS": "1",
        "SEMANTIC_SEARCH_LOG_LEVEL": "warning",
    }
    queries = [json.loads(q)["query"] for q in (DATA / "queries.jsonl").read_text().splitlines()]
    modes = ["hybrid", "dense", "bm25"]
    bodies = [{"query": q, "k": 10, "mode": modes[i % 3]} for i, q in enumerate(queries)]
    cmd = [sys.executable, "-m", "semantic_search.cli", "serve"]
    url = f"http://127.0.0.1:{port}"
    with serve_process(cmd, env, url):
        asyncio.run(http_load(url, "/v1/search", bodies, clients=clients, seconds=3))  # warm-up
        load = asyncio.run(http_load(url, "/v1/search", bodies, clients=clients, seconds=seconds))
    return {"workers": workers, **load}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--vectors", type=int, nargs="*", default=[], help="extra index sizes, e.g. 1000000"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--queries", type=int, default=200, help="held-out queries per size")
    parser.add_argument("--skip", nargs="*", default=[], choices=["encoder", "service", "indexes"])
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "encoder" not in args.skip:
        report["encoder"] = bench_encoder(args.threads)
        print(json.dumps(report["encoder"], indent=2), flush=True)
    if "service" not in args.skip:
        report["service"] = bench_service(args.workers, args.clients, args.seconds)
        print(json.dumps(report["service"], indent=2), flush=True)
    if "indexes" not in args.skip:
        from index_bench import bench_indexes

        corpus = len(np.load(DATA / "embeddings.int8.npy", mmap_mode="r"))
        sizes = [corpus, *args.vectors]
        report["indexes"] = bench_indexes(DATA, ENCODER, sizes, args.threads, args.queries)
        # the command that made these rows, which the README quotes beside them
        extra = f" --vectors {' '.join(map(str, args.vectors))}" if args.vectors else ""
        report["indexes"]["command"] = f"python benchmarks/bench_semantic_search.py{extra}"
    report["cpu_count"] = os.cpu_count()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
