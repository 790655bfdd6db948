"""Starts a service under uvicorn with JSON logs, graceful shutdown and multi-worker metrics."""

import os
import tempfile

import uvicorn

from mlstack.serve.logs import log_config
from mlstack.serve.settings import ServeSettings


def run(app_factory: str, settings: ServeSettings) -> None:
    """Runs `module:factory` (a zero-argument app factory) with the given settings.

    With several workers, each is a separate process: Prometheus samples then go through files in
    `PROMETHEUS_MULTIPROC_DIR` (a fresh folder unless one is set) so `/metrics` sums all workers.
    """
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        access_log=False,  # RequestContextMiddleware logs every request as JSON
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        proxy_headers=True,
    )
