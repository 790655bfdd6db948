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
from typing import Any

import numpy as np


@contextlib.contextmanager
def serve_process(
    cmd: Sequence[str], env: dict[str, str], url: str, *, ready_s: float = 120
) -> Iterator[str]:
    """Runs `cmd` until `url`/readyz answers 200; stops its whole process group afterwards."""
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
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


async def http_load(url: str, path: str, bodies: Sequence[dict[str, Any]], *, clients: int,
                    seconds: float, timeout_s: float = 30) -> dict[str, Any]:  # fmt: skip
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
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(a), "errors": errors,
            "requests_per_s": round(len(a) / elapsed, 1),
            "latency_ms": {f"p{p}": round(float(np.percentile(a, p)), 1) for p in (50, 95, 99)}}  # fmt: skip
