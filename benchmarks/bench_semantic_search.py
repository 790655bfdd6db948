"""Semantic search benchmarks, one run, same thread count for every contender:

1. encoder: sentence-transformers on PyTorch vs our ONNX fp32 and INT8 (sentences/s at batch 32,
   single-query latency);
2. service: `semantic-search serve` under 16 concurrent clients (requests/s, errors, latency);
3. indexes: exact vs LanceDB HNSW vs FAISS HNSW on the real embeddings (recall@10, latency),
   at the corpus size and, with --vectors, at a synthesised size (real vectors perturbed).

Writes reports/semantic_search/benchmark.json. Run after `dvc repro`.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path("data/semantic_search")
ENCODER = Path("models/semantic_search/encoder")
OUT = Path("reports/semantic_search/benchmark.json")


def _time_encode(encode, sentences: list[str], batch: int, runs: int = 3) -> dict[str, float]:
    """`encode(texts)` must batch by `batch`. Corpus throughput: the whole sample in one call,
    which both libraries sort by length before batching (how a corpus is embedded). Chunked:
    `batch` texts a call in the given order, so no sorting across batches. Then batch 1."""

    def rate(chunk: int) -> float:
        encode(sentences[:batch])
        t0 = time.perf_counter()
        for _ in range(runs):
            for i in range(0, len(sentences), chunk):
                encode(sentences[i : i + chunk])
        return round(runs * len(sentences) / (time.perf_counter() - t0), 1)

    single = []
    for s in sentences[:200]:
        t = time.perf_counter()
        encode([s])
        single.append((time.perf_counter() - t) * 1000)
    return {
        "sentences_per_s_b32": rate(len(sentences)),
        "sentences_per_s_b32_chunked": rate(batch),
        "single_ms_p50": round(float(np.median(single)), 2),
    }


def bench_encoder(threads: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from semantic_search.encoder import Encoder
    from semantic_search.export import resolve_model

    torch.set_num_threads(threads)
    sentences = json.loads((DATA / "parity.json").read_text()) + json.loads(
        (DATA / "calibration.json").read_text()
    )
    model = SentenceTransformer(
        str(resolve_model(json.loads((ENCODER / "encoder.json").read_text())["source"])),
        device="cpu",
    )
    results = {
        "sentences": len(sentences),
        "threads": threads,
        "sentence_transformers_torch": _time_encode(
            lambda b: model.encode(b, batch_size=32), sentences, 32
        ),
    }
    for variant in ("fp32", "int8"):
        enc = Encoder(ENCODER, variant=variant, threads=threads)
        results[f"onnx_{variant}"] = _time_encode(enc.encode, sentences, 32)
    base = results["sentence_transformers_torch"]
    for variant in ("fp32", "int8"):
        r = results[f"onnx_{variant}"]
        r["throughput_x"] = round(r["sentences_per_s_b32"] / base["sentences_per_s_b32"], 2)
        r["chunked_throughput_x"] = round(
            r["sentences_per_s_b32_chunked"] / base["sentences_per_s_b32_chunked"], 2
        )
        r["latency_x"] = round(base["single_ms_p50"] / r["single_ms_p50"], 2)
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


def _measure(name, search, build_s, queries, truth) -> dict:
    got, times = [], []
    for q in queries:
        t = time.perf_counter()
        got.append(search(q))
        times.append((time.perf_counter() - t) * 1000)
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth, strict=True)])
    row = {
        "index": name,
        "recall@10": round(float(recall), 4),
        "build_s": round(build_s, 1),
        "p50_ms": round(float(np.median(times)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
    }
    return row


def _lance_search(table, refine: int):
    def search(q):
        query = table.search(q).distance_type("cosine").limit(10)
        if refine:
            query = query.refine_factor(refine)
        return query.select(["id"]).to_arrow()["id"].to_numpy()

    return search


def _index_rows(base: np.ndarray, queries: np.ndarray, threads: int) -> list[dict]:
    import shutil
    import tempfile

    import faiss
    import lancedb
    import pyarrow as pa
    from lancedb.index import HnswSq, IvfPq

    faiss.omp_set_num_threads(threads)
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    rows = [_measure("exact (numpy)", lambda q: np.argsort(-(base @ q))[:10], 0.0, queries, truth)]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(base)
    hnsw.hnsw.efSearch = 64
    build = time.perf_counter() - t0
    rows.append(
        _measure(
            "faiss HNSW (M=32, ef=64)",
            lambda q: hnsw.search(q[None], 10)[1][0],
            build,
            queries,
            truth,
        )
    )
    tmp = tempfile.mkdtemp()
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), base.shape[1])
    table = lancedb.connect(tmp).create_table(
        "v", pa.table({"id": np.arange(len(base)), "vector": vectors})
    )
    for name, config in [
        ("lancedb IVF_HNSW_SQ", HnswSq(distance_type="cosine")),
        ("lancedb IVF_PQ", IvfPq(distance_type="cosine", num_sub_vectors=48)),
    ]:
        t0 = time.perf_counter()
        table.create_index("vector", config=config, replace=True)
        build = time.perf_counter() - t0
        rows.append(_measure(name, _lance_search(table, 0), build, queries, truth))
        rows.append(_measure(f"{name} + refine x4", _lance_search(table, 4), build, queries, truth))
    shutil.rmtree(tmp)
    return rows


def bench_indexes(sizes: list[int], threads: int) -> list[dict]:
    real = np.load(DATA / "embeddings.int8.npy").astype(np.float32)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, (200, real.shape[1])).astype(np.float32)
    queries = real[rng.choice(len(real), 200, replace=False)] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = []
    for n in sizes:
        if n <= len(real):
            base = real[:n]
        else:  # real vectors with small noise: keeps the real neighbourhood structure
            base = real[rng.integers(0, len(real), n)]
            base += rng.normal(0, 0.03, base.shape).astype(np.float32)
            base /= np.linalg.norm(base, axis=1, keepdims=True)
        for row in _index_rows(base, queries, threads):
            rows.append({**row, "vectors": n})
            print(rows[-1], flush=True)
    return rows


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
    parser.add_argument("--skip", nargs="*", default=[], choices=["encoder", "service", "indexes"])
    args = parser.parse_args()
    report = json.loads(OUT.read_text()) if OUT.exists() else {}
    if "encoder" not in args.skip:
        report["encoder"] = bench_encoder(args.threads)
        print(json.dumps(report["encoder"], indent=2), flush=True)
    if "service" not in args.skip:
        report["service"] = bench_service(args.workers, args.clients, args.seconds)
        print(json.dumps(report["service"], indent=2), flush=True)
    if "indexes" not in args.skip:
        corpus = len(np.load(DATA / "embeddings.int8.npy", mmap_mode="r"))
        report["indexes"] = bench_indexes([corpus, *args.vectors], args.threads)
    report["cpu_count"] = os.cpu_count()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
