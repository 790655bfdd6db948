"""The index part of bench_semantic_search.py: exact search vs FAISS HNSW vs LanceDB, on the same
thread cap and comparable build effort, with every setting and every synthetic input stated in
the rows it writes.

Threads: FAISS through OpenMP, numpy's BLAS through threadpoolctl, LanceDB through the
LANCE_CPU_THREADS / RAYON_NUM_THREADS its Rust runtimes read once at start-up, so
`cap_threads` must run before lancedb is imported.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

K = 10
# Build effort, the same for both HNSW graphs: M neighbours per node, EF_CONSTRUCTION candidates
# while inserting, EF_SEARCH candidates per query (LanceDB's defaults are m=20, efC=300).
HNSW = {"m": 32, "ef_construction": 200, "ef_search": 64}
# LanceDB's IVF search probes this many partitions (its own default is 20, stated here so the
# figure does not move with a library upgrade).
NPROBES = 20
BASE_NOISE = 0.03


def cap_threads(threads: int) -> dict[str, str]:
    """Environment caps LanceDB's runtimes read; returned so the report can state them."""
    caps = {"LANCE_CPU_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads)}
    os.environ.update(caps)
    return caps


def exact_search(base: np.ndarray):
    """The brute-force baseline the store itself runs: one matrix-vector product, then the top k
    by argpartition and only those k sorted (a full argsort of every score was about half of
    its time at 1M vectors)."""

    def search(q: np.ndarray) -> np.ndarray:
        scores = base @ q
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]

    return search


def exact_truth(base: np.ndarray, queries: np.ndarray, chunk: int = 50) -> np.ndarray:
    """The true top k of every query (untimed), in chunks so 1M x 200 scores never sit in
    memory at once."""
    out = []
    for i in range(0, len(queries), chunk):
        scores = queries[i : i + chunk] @ base.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def _measure(name, search, build_s, queries, truth, params: dict) -> dict:
    got, times = [], []
    for q in queries:
        t = time.perf_counter()
        got.append(search(q))
        times.append((time.perf_counter() - t) * 1000)
    recall = np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth, strict=True)])
    return {
        "index": name,
        "params": params,
        f"recall@{K}": round(float(recall), 4),
        "build_s": round(build_s, 1),
        "p50_ms": round(float(np.median(times)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
    }


def _lance_search(table, refine: int, ivf_hnsw: bool):
    def search(q):
        query = table.search(q).distance_type("cosine").limit(K).nprobes(NPROBES)
        if ivf_hnsw:
            query = query.ef(HNSW["ef_search"])
        if refine:
            query = query.refine_factor(refine)
        return query.select(["id"]).to_arrow()["id"].to_numpy()

    return search


def index_rows(base: np.ndarray, queries: np.ndarray, threads: int) -> list[dict]:
    import shutil
    import tempfile

    import faiss
    import lancedb
    import pyarrow as pa
    from lancedb.index import HnswSq, IvfPq
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)
    truth = exact_truth(base, queries)
    with threadpool_limits(threads):  # numpy's BLAS would take every core otherwise
        rows = [_measure("exact (numpy)", exact_search(base), 0.0, queries, truth, {})]
    m, efc, ef = HNSW["m"], HNSW["ef_construction"], HNSW["ef_search"]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = efc
    hnsw.add(base)
    hnsw.hnsw.efSearch = ef
    build = time.perf_counter() - t0
    rows.append(
        _measure(
            f"faiss HNSW (M={m}, efC={efc}, ef={ef})",
            lambda q: hnsw.search(q[None], K)[1][0],
            build,
            queries,
            truth,
            dict(HNSW),
        )
    )
    tmp = tempfile.mkdtemp()
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), base.shape[1])
    table = lancedb.connect(tmp).create_table(
        "v", pa.table({"id": np.arange(len(base)), "vector": vectors})
    )
    # One partition: a single HNSW graph like FAISS's (LanceDB's docs: "setting this to 1 works
    # well for most tables"), the same M and efC; its vectors are 8-bit scalar-quantised.
    ivf_partitions = max(1, round(len(base) ** 0.5))  # LanceDB's default, stated
    for name, config, params, graph in [
        (
            f"lancedb HNSW_SQ (1 partition, m={m}, efC={efc}, ef={ef})",
            HnswSq(distance_type="cosine", num_partitions=1, m=m, ef_construction=efc),
            {"num_partitions": 1, **HNSW},
            True,
        ),
        (
            f"lancedb IVF_PQ ({ivf_partitions} partitions, 48 sub-vectors, nprobes={NPROBES})",
            IvfPq(distance_type="cosine", num_partitions=ivf_partitions, num_sub_vectors=48),
            {"num_partitions": ivf_partitions, "num_sub_vectors": 48, "nprobes": NPROBES},
            False,
        ),
    ]:
        t0 = time.perf_counter()
        table.create_index("vector", config=config, replace=True)
        build = time.perf_counter() - t0
        rows.append(_measure(name, _lance_search(table, 0, graph), build, queries, truth, params))
        rows.append(
            _measure(
                f"{name} + refine x4",
                _lance_search(table, 4, graph),
                build,
                queries,
                truth,
                params | {"refine_factor": 4},
            )
        )
    shutil.rmtree(tmp)
    return rows


def held_out_queries(data: Path, encoder_dir: Path, n: int, threads: int) -> np.ndarray:
    """Real queries: held-out article descriptions (never indexed text), encoded by the encoder
    that made the indexed vectors."""
    from semantic_search.encoder import Encoder

    lines = (data / "queries.jsonl").read_text().splitlines()[:n]
    texts = [json.loads(line)["query"] for line in lines]
    vectors = Encoder(encoder_dir, variant="int8", threads=threads).encode(texts)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def bench_indexes(
    data: Path, encoder_dir: Path, sizes: list[int], threads: int, n_queries: int = 200
) -> dict:
    caps = cap_threads(threads)
    real = np.load(data / "embeddings.int8.npy").astype(np.float32)
    rng = np.random.default_rng(0)
    queries = held_out_queries(data, encoder_dir, n_queries, threads)
    setup = {
        "threads": threads,
        "thread_caps": {"faiss": "omp_set_num_threads", "numpy": "threadpoolctl", **caps},
        "hnsw": HNSW,
        "queries": f"real: the first {len(queries)} held-out article descriptions of "
        "queries.jsonl, encoded by the INT8 encoder (not indexed text)",
        "base": {
            "real": f"the {len(real):,} corpus embeddings",
            "synthetic": f"larger sizes are SYNTHETIC: corpus vectors resampled with "
            f"replacement plus N(0, {BASE_NOISE}) noise, renormalised",
        },
    }
    rows = []
    for n in sizes:
        synthetic = n > len(real)
        if synthetic:
            base = real[rng.integers(0, len(real), n)]
            base += rng.normal(0, BASE_NOISE, base.shape).astype(np.float32)
            base /= np.linalg.norm(base, axis=1, keepdims=True)
        else:
            base = real[:n]
        for row in index_rows(base, queries, threads):
            rows.append({**row, "vectors": n, "synthetic_vectors": synthetic})
            print(rows[-1], flush=True)
    return {"setup": setup, "rows": rows}
