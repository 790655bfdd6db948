"""The service as deployed: `semantic-search serve` with two uvicorn worker processes on one
index, concurrent writers and readers, and a SIGKILL in the middle of an upsert stream."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlstack.testing import free_port, wait_all_workers_ready
from semantic_search.encoder import Encoder
from semantic_search.indexing import index_documents
from semantic_search.stores import open_store


@pytest.fixture(scope="module")
def corpus_index(encoder_dir, corpus, tmp_path_factory) -> Path:
    index = tmp_path_factory.mktemp("pipeline") / "index"
    encoder = Encoder(encoder_dir)
    index_documents(open_store(str(index), encoder.dim), encoder, corpus, batch_size=32)
    return index


@contextlib.contextmanager
def serve(encoder_dir: Path, folder: Path, corpus_index: Path, workers: int) -> Iterator[tuple]:
    """`semantic-search serve` in its own process group; yields (base URL, process)."""
    port = free_port()
    env = {
        **os.environ,
        "SEMANTIC_SEARCH_ENCODER_DIR": str(encoder_dir),
        "SEMANTIC_SEARCH_INDEX_URI": str(folder / "index"),
        "SEMANTIC_SEARCH_CORPUS_INDEX": str(corpus_index),
        "SEMANTIC_SEARCH_MAX_WAIT_MS": "2",
        "SEMANTIC_SEARCH_ONNX_THREADS": "1",
        "SEMANTIC_SEARCH_LOG_LEVEL": "warning",
    }
    command = [
        sys.executable,
        "-m",
        "semantic_search.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # the server's log beside the test's files: `server_errors(folder)` quotes it on a failure
    log = (folder / "server.log").open("ab")
    proc = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_all_workers_ready(base, proc)  # every worker, not the first to answer
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def server_errors(folder: Path) -> str:
    """The server log's last tracebacks (a 500's cause is only there)."""
    text = (folder / "server.log").read_text(errors="replace")
    return text[text.find("Traceback") :][-4000:] if "Traceback" in text else text[-2000:]


def fresh(base: str) -> httpx.AsyncClient:
    """No kept-alive connections, so requests spread over both workers."""
    return httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    )


def test_two_workers_concurrent_writes_reads_and_deletes(
    encoder_dir, corpus, corpus_index, tmp_path
):
    new = [
        [
            {"id": f"w{i}-{j}", "text": f"worker note {i} {j} about tides", "topic": "Notes"}
            for j in range(2)
        ]
        for i in range(24)
    ]
    gone = [d.id for d in corpus[:12]]

    async def main(base: str) -> None:
        async with fresh(base) as client:
            writes = [client.post("/v1/documents", json={"documents": b}) for b in new]
            deletes = [client.delete(f"/v1/documents/{i}") for i in gone]
            searches = [
                client.post("/v1/search", json={"query": f"tides {i}", "k": 5}) for i in range(24)
            ]
            rs = await asyncio.gather(*writes, *deletes, *searches)
            assert [r.status_code for r in rs] == [200] * len(rs), (
                [r.text for r in rs if r.is_error],
                server_errors(tmp_path),
            )
            expected = len(corpus) + 2 * len(new) - len(gone)
            for _ in range(8):  # each a new connection: both workers answer
                assert (await client.get("/v1/stats")).json()["documents"] == expected
            for batch in new:
                for d in batch:
                    assert (await client.get(f"/v1/documents/{d['id']}")).status_code == 200
            for i in gone:
                assert (await client.get(f"/v1/documents/{i}")).status_code == 404

    with serve(encoder_dir, tmp_path, corpus_index, workers=2) as (base, _):
        asyncio.run(main(base))


def test_sigkill_during_an_upsert_stream_loses_no_acknowledged_document(
    encoder_dir, corpus, corpus_index, tmp_path
):
    acknowledged: list[str] = []
    stop = threading.Event()

    def upsert_stream(base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                batch = [{"id": f"k{i}-{j}", "text": f"streamed note {i} {j}"} for j in range(8)]
                try:
                    r = client.post("/v1/documents", json={"documents": batch})
                except httpx.TransportError:  # the kill
                    return
                if r.status_code == 200:
                    acknowledged.extend(d["id"] for d in batch)

    with serve(encoder_dir, tmp_path, corpus_index, workers=1) as (base, proc):
        writer = threading.Thread(target=upsert_stream, args=(base,))
        writer.start()
        while len(acknowledged) < 40:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream: a write is in flight
        proc.wait()
        stop.set()
        writer.join(timeout=30)
    with serve(encoder_dir, tmp_path, corpus_index, workers=1) as (base, _):
        count = httpx.get(base + "/v1/stats").json()["documents"]
        # Every acknowledged batch is there; the one in flight landed whole or not at all.
        assert count - len(corpus) in (len(acknowledged), len(acknowledged) + 8)
        for doc_id in acknowledged:
            assert httpx.get(f"{base}/v1/documents/{doc_id}").status_code == 200
