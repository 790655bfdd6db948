"""Test helpers shared by every project: run an app on a real port, find a free port."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, *, wait_ready: bool = True, timeout_s: float = 60) -> Iterator[str]:
    """Serves `app` with uvicorn on 127.0.0.1 in a thread; yields its base URL.

    Real HTTP, real lifespan (model loading), so tests see what a client sees. Without
    `wait_ready` it returns as soon as the server answers at all (a failed load answers 503).
    """
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    path = "/readyz" if wait_ready else "/healthz"
    while True:
        with contextlib.suppress(httpx.TransportError):
            status = httpx.get(base + path, timeout=2).status_code
            if status == 200 or not wait_ready:
                break
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"server at {base} not ready within {timeout_s} s")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
