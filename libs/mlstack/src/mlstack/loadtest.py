"""Load tests for the benchmarks: start a service in its own process group, drive it with
concurrent HTTP clients, report throughput, latency percentiles and errors.

    with serve_process(["semantic-search", "serve"], env, "http://127.0.0.1:8092"):
        report = asyncio.run(http_load(url, "/v1/search", bodies, clients=16, seconds=20))
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@contextlib.contextmanager
def serve_process(
    cmd: Sequence[str], env: dict[str, str], url: str, *, ready_s: float = 120
) -> Iterator[subprocess.Popen]:
    """Runs `cmd` until `url`/readyz answers 200; stops its whole process group afterwards.
    Yields the process (its `pid` is the root of the service's process tree)."""
    import httpx

    proc = subprocess.Popen(list(cmd), env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} not ready at {url} within {ready_s} s")
            time.sleep(0.5)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


async def http_load(
    url: str,
    path: str,
    bodies: Sequence[dict[str, Any]],
    *,
    clients: int,
    seconds: float,
    timeout_s: float = 30,
) -> dict[str, Any]:
    """`clients` loops POSTing `bodies` (round robin) to `path` for `seconds`."""
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(worker: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as http:
            i = worker
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    r = await http.post(path, json=bodies[i % len(bodies)])
                    errors += r.status_code != 200
                except httpx.HTTPError:  # a timeout or a dropped connection is an error too
                    errors += 1
                latencies.append((time.perf_counter() - t) * 1000)
                i += clients

    t0 = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(clients)))
    elapsed = time.perf_counter() - t0
    a = np.asarray(latencies)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(a),
        "errors": errors,
        "requests_per_s": round(len(a) / elapsed, 1),
        "latency_ms": {f"p{p}": round(float(np.percentile(a, p)), 1) for p in (50, 95, 99)},
    }


@dataclass(frozen=True)
class Call:
    """One request of a mix: `kind` names it in the report ("valid", "hostile: 1 MB query")."""

    kind: str
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] | None = None


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children (uvicorn workers), in MB."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return round(total / 2**20, 1)


async def mixed_load(
    url: str,
    calls: Sequence[Call],
    *,
    clients: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30,
    pid: int | None = None,
) -> dict[str, Any]:
    """`clients` loops sending `calls` round robin for `seconds`. Counts every answer by kind and
    status (a timeout or a dropped connection is status "transport"), latency percentiles over
    all of them and, with `pid`, the process tree's RSS each second."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, dict[str, int]] = {}
    rss: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, headers=headers) as http:
            i = worker
            while time.perf_counter() < stop:
                call = calls[i % len(calls)]
                t = time.perf_counter()
                try:
                    r = await http.request(
                        call.method,
                        call.path,
                        json=call.json,
                        content=call.content,
                        files=call.files,
                        headers=call.headers,
                    )
                    status = str(r.status_code)
                except httpx.HTTPError:
                    status = "transport"
                latencies.append((time.perf_counter() - t) * 1000)
                counts = statuses.setdefault(call.kind, {})
                counts[status] = counts.get(status, 0) + 1
                i += clients

    async def sample_rss() -> None:
        while pid is not None and time.perf_counter() < stop:
            rss.append(tree_rss_mb(pid))
            await asyncio.sleep(1.0)

    t0 = time.perf_counter()
    await asyncio.gather(sample_rss(), *(client(w) for w in range(clients)))
    elapsed = time.perf_counter() - t0
    a = np.asarray(latencies)
    report = {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(a),
        "requests_per_s": round(len(a) / elapsed, 1),
        "statuses": statuses,
        "latency_ms": {f"p{p}": round(float(np.percentile(a, p)), 1) for p in (50, 99)},
    }
    if rss:
        report["rss_mb"] = {"start": rss[0], "end": rss[-1], "max": max(rss)}
    return report
