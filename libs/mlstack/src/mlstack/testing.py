"""Test helpers shared by every project: run an app on a real port, find a free port, serve a
project on tiny models, fuzz its API contract with schemathesis. A throwaway Postgres:
testing_postgres.py."""

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn


def settings_env(settings) -> dict[str, str]:
    """Service settings as the environment variables that give them (the settings class's own
    prefix), for a service started in another process. Only fields set explicitly, None left
    out, so the rest keep their defaults: start it where relative defaults do not exist."""
    prefix = settings.model_config.get("env_prefix", "")
    env = {}
    for key, value in settings.model_dump(exclude_unset=True).items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"{prefix}{key.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return env


def wait_all_workers_ready(
    url: str, proc: subprocess.Popen, *, run: int = 20, timeout_s: float = 90
) -> None:
    """Waits until `run` readiness checks in a row answer 200. With several uvicorn workers each
    new connection may land on any of them, so the first 200 says only that one is ready."""
    deadline, ready = time.monotonic() + timeout_s, 0
    while ready < run:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the service at {url} did not get ready within {timeout_s} s")
        try:
            ready = ready + 1 if httpx.get(url + "/readyz", timeout=2).status_code == 200 else 0
        except httpx.TransportError:
            ready = 0
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(
    app, *, wait_ready: bool = True, timeout_s: float = 60, http: str = "auto"
) -> Iterator[str]:
    """Serves `app` with uvicorn on 127.0.0.1 in a thread; yields its base URL.

    Real HTTP, real lifespan (model loading), so tests see what a client sees. Without
    `wait_ready` it returns as soon as the server answers at all (a failed load answers 503).
    """
    port = free_port()
    # http: uvicorn's parser ("h11" accepts any token as a method, httptools does not)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=http
    )
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


def _tiny_command(
    description: str, port: int, argv: list[str] | None, *, workers: bool
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--api-key", default=None)
    if workers:
        parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args(argv)


def serve_tiny(
    description: str,
    port: int,
    make_app: Callable[[Path, str | None], Any],
    argv: list[str] | None = None,
) -> None:
    """`python -m <project>.testing FOLDER --port P [--api-key K]`: the command shape that
    benchmarks/bench_soak.py starts each service with. `make_app(folder, api_key)` builds the
    service on tiny models written to FOLDER; uvicorn serves it on 127.0.0.1 until stopped."""
    args = _tiny_command(description, port, argv, workers=False)
    app = make_app(args.folder, args.api_key)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def serve_tiny_workers(
    description: str,
    port: int,
    factory: str,
    settings_for: Callable[..., contextlib.AbstractContextManager],
    argv: list[str] | None = None,
) -> None:
    """`serve_tiny`'s command with `--workers N` (default 1), for a service that several
    uvicorn worker processes serve: a worker cannot be handed an app object, so each builds its
    own with `factory` ("module:function") from the settings, passed in the environment
    (`settings_env`). `settings_for(folder, port=P[, api_key=K])` is a context manager that
    yields the tiny settings; whatever it starts (a fake generator) runs until uvicorn stops."""
    args = _tiny_command(description, port, argv, workers=True)
    overrides = {"port": args.port} | ({"api_key": args.api_key} if args.api_key else {})
    with settings_for(args.folder, **overrides) as settings:
        os.environ.update(settings_env(settings))
        uvicorn.run(
            factory,
            factory=True,
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            log_level="warning",
        )


def schemathesis_run(
    base: str,
    *,
    api_key: str | None = None,
    max_examples: int = 25,
    seed: int = 1,
    max_response_time_s: float = 5.0,
    hooks: str | None = None,
    config: Path | None = None,
) -> subprocess.CompletedProcess:
    """Runs schemathesis with every check against a live service's own OpenAPI document: no
    5xx, every status documented, bodies and headers as declared, schema-valid requests
    accepted and invalid ones refused, correct 405s. Deterministic for a given seed. `hooks`
    names a module that teaches schemathesis what the schema cannot say (valid file contents);
    `config`, a schemathesis.toml with a service's documented exceptions.

    The stateful phase runs on its own without `negative_data_rejection`: it fills a mutated
    (negative) request with values from earlier responses, which can make it valid again, and
    then reports the 2xx as "schema-violating request accepted" (seen on multipart forms). The
    other phases check negative data."""
    st = str(Path(sys.executable).with_name("st"))
    common = [
        "--url",
        base,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--max-response-time",
        str(max_response_time_s),
        "--request-timeout",
        "30",
    ]
    if api_key:
        common += ["-H", f"Authorization: Bearer {api_key}"]
    head = [st, *(["--config-file", str(config.resolve())] if config else []), "run"]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = hooks
    runs = [
        ["--checks", "all", "--phases", "examples,coverage,fuzzing"],
        ["--checks", "all", "--exclude-checks", "negative_data_rejection", "--phases", "stateful"],
    ]
    with tempfile.TemporaryDirectory() as scratch:  # it keeps a .schemathesis/ cache in its cwd
        results = [
            subprocess.run(
                [*head, f"{base}/openapi.json", *common, *phases],
                cwd=scratch,
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
            )
            for phases in runs
        ]
    if "No links for stateful testing" in results[1].stdout:  # an API with nothing to chain
        results[1].returncode = 0
    failed = [r for r in results if r.returncode != 0]
    return (failed or results)[0] if len(failed) <= 1 else _merged(failed)


def _merged(results: list[subprocess.CompletedProcess]) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(
        results[0].args,
        results[0].returncode,
        "\n".join(r.stdout for r in results),
        "\n".join(r.stderr for r in results),
    )
