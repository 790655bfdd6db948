"""The app factory every service starts from.

    app = create_app(title="image-classifier", settings=settings, load_models=load, demo_dir=STATIC)
    app.include_router(router)

gives: `/healthz`, `/readyz`, `/metrics`, `/v1/models`, request ids, JSON access logs, the error
envelope (documented in the OpenAPI), API-key auth, a body limit, JSON bodies that repeat a key
refused (400), CORS, the readiness gate (`requires`), a bounded CPU pool (`offload`), a
micro-batcher per model and the demo page at `/`.
"""

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from mlstack.monitor import metrics
from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve.auth import ApiKeys
from mlstack.serve.batching import MicroBatcher
from mlstack.serve.errors import error_body, install_error_handlers
from mlstack.serve.gate import Readiness, not_ready, requires
from mlstack.serve.json_keys import refuse_repeated_keys
from mlstack.serve.middleware import (
    GuardMiddleware,
    RequestContextMiddleware,
    UnhandledErrorMiddleware,
)
from mlstack.serve.models import Deployment, ModelHub, ServedModel
from mlstack.serve.offload import configure as configure_offload
from mlstack.serve.openapi import document_errors
from mlstack.serve.settings import ServeSettings
from mlstack.serve.shadow import Shadow

log = logging.getLogger("mlstack.serve")
EXIT_LOAD_FAILED = 3
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/", "/favicon.ico")
PUBLIC_PREFIXES = ("/demo",)


async def _load(app: FastAPI, load_models: Callable[[], list[ServedModel]]) -> None:
    settings: ServeSettings = app.state.settings
    state: Readiness = app.state.readiness
    try:
        started = time.perf_counter()
        models = await asyncio.to_thread(load_models)
        for model in models:
            state.reason = f"warming up {model.card.name}"
            await asyncio.to_thread(model.warmup)
            if model.card.shadow_of is not None:
                await _attach_shadow(app, model)
                continue
            batcher = None
            if getattr(model, "predict_batch", None) is not None:
                batcher = MicroBatcher(
                    model.predict_batch,
                    name=model.card.name,
                    max_batch_size=settings.max_batch_size,
                    max_wait_ms=settings.max_wait_ms,
                    queue_size=settings.queue_size,
                    timeout_s=settings.request_timeout_s,
                )
                await batcher.start()
            app.state.hub.add(Deployment(model, batcher))
            card = model.card
            metrics.MODEL_INFO.labels(card.name, card.version, card.sha256 or "").set(1)
        state.ready, state.reason = True, "ready"
        log.info(
            "models ready",
            extra={
                "models": [m.card.name for m in models],
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
    except Exception as exc:  # say why in /readyz and fail /healthz: a restart may mend it
        state.fail(f"model loading failed: {type(exc).__name__}: {exc}")
        log.exception("model loading failed")
        if settings.exit_on_load_failure:  # for supervisors that restart on exit, not on probes
            logging.shutdown()
            os._exit(EXIT_LOAD_FAILED)


async def _attach_shadow(app: FastAPI, model: ServedModel) -> None:
    """Runs `model` beside the champion it names (listed before it), not as a served model."""
    settings: ServeSettings = app.state.settings
    champion = app.state.hub.get(model.card.shadow_of)
    if champion.shadow is not None:
        raise ValueError(f"{champion.model.card.name} already has a shadow")
    shadow = Shadow(
        model,
        champion.model,
        share=settings.shadow_share,
        queue_size=settings.shadow_queue,
        timeout_s=settings.shadow_timeout_s,
        seed=settings.shadow_seed,
        nice=settings.shadow_nice,
        inference_log=app.state.inference_log,
    )
    await shadow.start()
    champion.shadow = shadow
    names = {"model": model.card.name, "champion": champion.model.card.name}
    log.info("shadow attached", extra={**names, "share": settings.shadow_share})


def create_app(
    *,
    title: str,
    settings: ServeSettings,
    load_models: Callable[[], list[ServedModel]] | None = None,
    version: str = "0.1.0",
    demo_dir: Path | None = None,
    public_routes: tuple[tuple[str, str], ...] = (),
) -> FastAPI:
    """Builds the service. `load_models` runs in a thread at start-up and may put what it builds
    besides models into `app.state.resources` (routes get it through `requires(key)`); until it
    and every model's `warmup()` are done, `/readyz` and the gated routes answer 503 with the
    reason; if it fails, `/healthz` fails too. With an API key set, every route needs it except
    health, metrics, the demo and `public_routes` ((method, path) pairs, a path ending in "/"
    being a prefix): only for routes that compute nothing."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(_load(app, load_models)) if load_models else None
        if loader is None:
            app.state.readiness.ready, app.state.readiness.reason = True, "ready"
        yield
        app.state.readiness.ready, app.state.readiness.reason = False, "shutting down"
        if loader is not None and not loader.done():
            loader.cancel()
        for deployment in app.state.hub:
            await deployment.stop()

    # every route's JSON body is checked for repeated keys (json_keys.py), however it is read
    repeats = [Depends(refuse_repeated_keys)]
    app = FastAPI(title=title, version=version, lifespan=lifespan, dependencies=repeats)
    app.state.settings = settings
    app.state.readiness = Readiness()
    app.state.hub = ModelHub()
    app.state.resources = {"hub": app.state.hub}
    configure_offload(settings.cpu_workers, settings.cpu_queue)
    # Routes log sampled inputs/outputs here for drift reports; None when monitoring is off.
    app.state.inference_log = (
        InferenceLog(settings.monitor_dir, sample_rate=settings.inference_log_sample_rate)
        if settings.monitor_dir
        else None
    )
    install_error_handlers(app)
    document_errors(app)

    # Each add_middleware wraps the ones before it. From the outside in: request context, CORS,
    # the 500 envelope, the guard, then the routes.
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(
        GuardMiddleware,
        api_keys=ApiKeys(api_key, settings.api_keys_file),
        max_body_bytes=settings.max_body_bytes,
        public_paths=PUBLIC_PATHS,
        public_prefixes=PUBLIC_PREFIXES,
        public_routes=public_routes,
    )
    app.add_middleware(UnhandledErrorMiddleware)  # inside CORS, so a 500 is readable too
    if settings.cors_origins:
        # Outside the guard: a browser's preflight never carries the key (Fetch spec), so it is
        # answered here (only OPTIONS + Origin + Access-Control-Request-Method; any other OPTIONS
        # meets the guard), and the guard's 401/413 get Access-Control-Allow-Origin, else the
        # page cannot read them. "*" in allow_headers echoes the requested ones, Authorization
        # included. No credentials mode: keys travel in a header, not in cookies. The exposed
        # headers are not CORS-safelisted, so a page could not read them unless named.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=False,
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware)  # outermost: ids and logs cover rejections too

    def unavailable(request: Request, state: Readiness) -> JSONResponse:
        err = not_ready(state)
        request_id = getattr(request.state, "request_id", None)
        body = error_body(err.status, err.code, err.message, request_id=request_id)
        return JSONResponse(body, status_code=err.status, headers=err.headers)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> Response:
        """Liveness: 200 while the process can serve (loading included), 503 once loading failed
        for good, so the supervisor restarts it."""
        state: Readiness = request.app.state.readiness
        return unavailable(request, state) if state.failed else JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request) -> Response:
        """Readiness: 200 once every model is loaded and warmed up, 503 with the reason before."""
        state: Readiness = request.app.state.readiness
        return JSONResponse({"status": "ready"}) if state.ready else unavailable(request, state)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/v1/models", tags=["models"])
    def list_models(hub: Hub) -> dict:
        """The loaded models: name, version, file checksum, load time (OpenAI's list shape)."""
        data = [
            {**d.model.card.to_openai(), **({"shadow": d.shadow.describe()} if d.shadow else {})}
            for d in hub
        ]
        return {"object": "list", "data": data}

    if demo_dir is not None:
        app.mount("/demo", StaticFiles(directory=demo_dir, html=True), name="demo")

        @app.get("/", include_in_schema=False)
        def index() -> RedirectResponse:
            return RedirectResponse("/demo/")

    return app


def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


Hub = Annotated[ModelHub, Depends(requires("hub"))]
Settings = Annotated[ServeSettings, Depends(get_settings)]
