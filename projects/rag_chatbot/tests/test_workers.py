"""Real uvicorn processes: two workers (sqlite) or two replicas as on two hosts (Postgres) writing
one store, and a SIGKILL in the middle of uploads. Every acknowledged write is visible from every
worker and replica, and after a restart."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mlstack.testing import free_port, settings_env, wait_all_workers_ready
from rag_chatbot.registry import Registry
from rag_chatbot.service import registry_location
from rag_chatbot.settings import Settings

from .test_service import AUTH, RETRIEVAL, settings_for


def start(settings, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **settings_env(settings)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "rag_chatbot.service:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        start_new_session=True,  # its own group: the test kills the workers too
        cwd=settings.uploads_dir.parent,  # relative defaults (the corpus index) resolve to nothing
    )
    url = f"http://127.0.0.1:{port}"
    wait_all_workers_ready(url, proc)
    return proc, url


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    proc.wait(timeout=30)


def upload(c: httpx.Client, doc_id: str, text: str) -> int:
    files = {"file": (f"{doc_id}.txt", text.encode(), "text/plain")}
    return c.post("/v1/documents", files=files, data={"id": doc_id}).status_code


def text_of(n: int) -> str:
    return f"Document {n} says that animal number {n} lives in region {n}. " * 8


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(request, encoder_dir, tmp_path) -> list[tuple[Settings, int]]:
    """Services sharing one store, as (settings, workers) per process. sqlite: one host, one
    service with two workers. postgres: two replicas (one worker each) as on two hosts, each
    with its own uploads folder and working directory, one Postgres registry, one index folder
    (standing in for the Milvus every replica would share)."""
    if request.param == "sqlite":
        return [(settings_for(encoder_dir, tmp_path, "http://127.0.0.1:9/v1"), 2)]
    url = request.getfixturevalue("postgres_db")
    hosts = []
    for host in ("host-a", "host-b"):
        (tmp_path / host).mkdir()
        hosts.append(
            (
                settings_for(
                    encoder_dir,
                    tmp_path / host,
                    "http://127.0.0.1:9/v1",
                    index_uri=str(tmp_path / "index"),
                    registry=url,
                ),
                1,
            )
        )
    return hosts


def test_writers_on_one_store_agree_exactly(deployment):
    """Uploads, deletes and searches at once, spread over every worker or replica: every
    acknowledged write is visible from each of them, counts exact; uploads racing for one id
    (different files) get exactly one 201 and 409s for the rest, never a silent replacement."""
    services = [start(settings, workers) for settings, workers in deployment]
    urls = [url for _, url in services]
    clients = [httpx.Client(base_url=url, headers=AUTH, timeout=60) for url in urls]
    try:
        doomed = [f"old-{n}" for n in range(8)]
        for n, doc in enumerate(doomed):
            assert upload(clients[n % len(clients)], doc, text_of(100)) == 201
        contested = [(f"same-{n % 6}", n) for n in range(24)]  # 6 ids, 4 different files each
        with ThreadPoolExecutor(8) as pool:
            ups = pool.map(
                lambda n: upload(clients[n % len(clients)], f"doc-{n}", text_of(n)), range(24)
            )
            races = pool.map(
                lambda item: upload(
                    clients[item[1] % len(clients)], item[0], text_of(item[1] + 1000)
                ),
                contested,
            )
            dels = pool.map(
                lambda nd: (
                    clients[nd[0] % len(clients)].delete(f"/v1/documents/{nd[1]}").status_code
                ),
                enumerate(doomed),
            )
            reads = pool.map(
                lambda n: (
                    clients[n % len(clients)]
                    .post("/v1/retrieve", json={"query": f"animal {n}", **RETRIEVAL})
                    .status_code
                ),
                range(16),
            )
            assert set(ups) == {201} and set(dels) == {200} and set(reads) == {200}
            races = list(races)
        winners = {
            doc_id: n for (doc_id, n), status in zip(contested, races, strict=True) if status == 201
        }
        assert races.count(201) == 6 and races.count(409) == 18, races
        expected = {f"doc-{n}" for n in range(24)} | set(winners)
        for n in range(12):  # each answer from whichever worker or replica took the connection
            with httpx.Client(base_url=urls[n % len(urls)], headers=AUTH, timeout=60) as fresh:
                listing = fresh.get("/v1/documents", params={"limit": 1000}).json()
                assert listing["total"] == 30
                listed = {d["id"]: d for d in listing["documents"]}
                assert set(listed) == expected
                for doc_id, winner in winners.items():  # the winner's file, not another's
                    assert listed[doc_id]["sha256"] == sha256(text_of(winner + 1000))
                hit = fresh.post(
                    "/v1/retrieve",
                    json={"query": "animal", "k": 20, **RETRIEVAL, "filters": {"source": doomed}},
                ).json()
                assert hit["sources"] == []  # no chunk of a deleted document is served
    finally:
        for c in clients:
            c.close()
        for proc, _ in services:
            stop(proc)


def test_sigkill_during_uploads_loses_no_acknowledged_document(deployment):
    """SIGKILL of a service in the middle of uploads (with replicas, of one of them while the
    other keeps taking uploads), then a restart: every acknowledged document is listed, whole.
    A restarted replica comes back as on a new host (an empty uploads folder): it still finishes
    the write the killed one left pending, from the file kept in Postgres."""
    deployment = [(settings, 1) for settings, _ in deployment]
    services = [start(settings, workers) for settings, workers in deployment]
    acknowledged: list[str] = []
    stopping = threading.Event()

    def uploader(url: str, prefix: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
            for n in range(10_000):
                if stopping.is_set():
                    return
                try:
                    if upload(c, f"{prefix}-{n}", text_of(n) * 4) == 201:
                        acknowledged.append(f"{prefix}-{n}")
                except httpx.TransportError:
                    return

    threads = [
        threading.Thread(target=uploader, args=(url, f"doc{i}"))
        for i, (_, url) in enumerate(services)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len([a for a in acknowledged if a.startswith("doc0-")]) < 5:
        assert time.monotonic() < deadline, "the uploads did not get going"
        time.sleep(0.01)
    # into the middle of the next upload: between its two steps if the poll catches it there
    registry = Registry(registry_location(deployment[0][0]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        r.id.startswith("doc0-") for r in registry.pending()
    ):
        time.sleep(0.001)
    stop(services[0][0], signal.SIGKILL)
    time.sleep(0.5)  # the other replica (if any) goes on taking uploads meanwhile
    stopping.set()
    for thread in threads:
        thread.join(timeout=60)
    settings = deployment[0][0]
    if len(deployment) > 1:  # a replica rescheduled on another host: a fresh, empty disk
        fresh = settings.uploads_dir.parent / "rescheduled"
        settings = settings.model_copy(update={"uploads_dir": fresh / "uploads"})
        fresh.mkdir()
    services[0] = start(settings, 1)
    try:
        for _, url in services:
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as c:
                listing = c.get("/v1/documents", params={"limit": 1000}).json()
                listed = {d["id"]: d for d in listing["documents"]}
                assert set(acknowledged) <= set(listed)
                # at most the one in flight besides: finished from its kept file, or never listed
                assert len(listed) - len(acknowledged) <= 1
                for doc_id, info in listed.items():  # whole: every chunk of every listed document
                    hit = c.post(
                        "/v1/retrieve",
                        json={
                            "query": "animal region",
                            "k": 20,
                            **RETRIEVAL,
                            "filters": {"source": doc_id},
                        },
                    ).json()
                    assert len(hit["sources"]) == min(info["chunks"], 20), doc_id
        assert registry.pending() == []
    finally:
        for proc, _ in services:
            stop(proc)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
