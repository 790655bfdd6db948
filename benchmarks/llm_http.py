"""bench_llm_chat.py's HTTP run: the served default backend with 16 streaming clients, against
the same streams in process."""

import asyncio
import json
import sys
import time

from llm_engines import chat_ids, make_engine, ov_export, percentile, streams


def bench_http(
    kind: str, tokenizer, questions: list[str], tokens: int, threads: int, clients: int = 16
) -> dict:
    """The served default backend with `clients` streaming clients, and the same streams in
    process; both stop at end-of-turn, as served answers do."""
    import httpx

    from mlstack.loadtest import serve_process
    from mlstack.testing import free_port

    batch = (questions * clients)[:clients]
    engine = make_engine(kind, tokenizer, clients, threads, eos={tokenizer.eos_token_id})
    try:
        asyncio.run(streams(engine, [chat_ids(tokenizer, batch[0])], 4))  # warm-up
        local = asyncio.run(streams(engine, [chat_ids(tokenizer, q) for q in batch], tokens))
    finally:
        engine.stop()

    async def one(client: httpx.AsyncClient, question: str) -> tuple[float, int]:
        body = {
            "messages": [{"role": "user", "content": question}],
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        t0, first, used = time.perf_counter(), None, 0
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    first = first or time.perf_counter()
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        raise RuntimeError(chunk["error"])
                    used = (chunk.get("usage") or {}).get("completion_tokens", used)
        return first - t0, used

    async def run(url: str) -> tuple[float, list]:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            await one(client, batch[0])  # warm-up
            t0 = time.perf_counter()
            done = await asyncio.gather(*[one(client, q) for q in batch], return_exceptions=True)
            return time.perf_counter() - t0, done

    port = free_port()
    served = {"LLM_CHAT_BACKEND": kind}
    if kind.startswith("openvino"):  # the service's openvino backend serves one export folder
        folder, precision = ov_export(kind)
        served = {
            "LLM_CHAT_BACKEND": "openvino",
            "LLM_CHAT_OV_DIR": str(folder),
            "LLM_CHAT_OV_PRECISION": precision,
        }
    env = served | {
        "LLM_CHAT_SLOTS": str(clients),
        "LLM_CHAT_PORT": str(port),
        "LLM_CHAT_THREADS": str(threads),
        "LLM_CHAT_CONTEXT_TOKENS": "512",
    }
    url = f"http://127.0.0.1:{port}"
    # this interpreter's, not whatever `llm-chat` is first on PATH (or none, outside the venv)
    with serve_process([sys.executable, "-m", "llm_chat.cli", "serve"], env, url):
        wall, done = asyncio.run(run(url))
    ok = [d for d in done if not isinstance(d, BaseException)]
    aggregate = sum(u for _, u in ok) / wall
    return {
        "clients": clients,
        "errors": len(done) - len(ok),
        "errors_sample": [repr(d)[:200] for d in done if isinstance(d, BaseException)][:3],
        "aggregate_tokens_per_s": round(aggregate, 1),
        "ttft_ms_p50": round(percentile([1000 * f for f, _ in ok], 0.5), 1) if ok else None,
        "ttft_ms_p99": round(percentile([1000 * f for f, _ in ok], 0.99), 1) if ok else None,
        "in_process_aggregate_tokens_per_s": local["aggregate_tokens_per_s"],
        "vs_in_process": round(aggregate / local["aggregate_tokens_per_s"], 2),
    }
