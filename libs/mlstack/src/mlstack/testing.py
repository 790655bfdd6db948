"""Test helpers shared by every project: run an app on a real port, find a free port, fuzz its
API contract with schemathesis."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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


def schemathesis_run(
    base: str,
    *,
    api_key: str | None = None,
    max_examples: int = 25,
    seed: int = 1,
    max_response_time_s: float = 5.0,
    hooks: str | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Runs schemathesis with every check against a live service's own OpenAPI document: no
    5xx, every status documented, bodies and headers as declared, schema-valid requests
    accepted and invalid ones refused, correct 405s. Deterministic for a given seed. `hooks`
    names a module that teaches schemathesis what the schema cannot say (valid file contents)."""
    command = [str(Path(sys.executable).with_name("st")), "run", f"{base}/openapi.json",
               "--url", base, "--checks", "all", "--max-examples", str(max_examples),
               "--seed", str(seed), "--workers", "1", "--max-response-time",
               str(max_response_time_s), "--request-timeout", "30", *extra]  # fmt: skip
    if api_key:
        command += ["-H", f"Authorization: Bearer {api_key}"]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = hooks
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
