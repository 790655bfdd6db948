"""Pure ASGI middleware: request ids, JSON access logs, HTTP metrics, API key, body limit, the
500 envelope for unhandled errors.

Written as raw ASGI (not `BaseHTTPMiddleware`) so streaming responses pass straight through and
the body limit also holds for chunked uploads that send no Content-Length.
"""

import logging
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.monitor import metrics
from mlstack.serve.auth import ApiKeys
from mlstack.serve.errors import APIError, error_body

access_log = logging.getLogger("mlstack.access")
log = logging.getLogger("mlstack.serve")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Gives each request an id (echoed as `X-Request-ID`), logs it as JSON, counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.observe_http(scope["method"], route, status, elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )


class GuardMiddleware:
    """Rejects requests before they reach a route: missing API key (401), a compressed body
    (415), body too big (413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: ApiKeys,
        max_body_bytes: int,
        public_paths: tuple[str, ...] = (),
        public_prefixes: tuple[str, ...] = (),
        public_routes: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.public_paths = set(public_paths)
        self.public_prefixes = public_prefixes
        self.public_routes = public_routes

    def _is_public(self, method: str, path: str) -> bool:
        if path in self.public_paths or path.startswith(self.public_prefixes):
            return True
        # (method, path) pairs a service opens to readers; a path ending in "/" is a prefix.
        return any(
            method == m and (path == p or (p.endswith("/") and path.startswith(p)))
            for m, p in self.public_routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.api_keys.enabled and not self._is_public(scope["method"], scope["path"]):
            auth = _header(scope, b"authorization") or ""
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not self.api_keys.matches(token):
                err = APIError(
                    401,
                    "invalid_api_key",
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    param="authorization",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await _send_error(scope, receive, send, err)
                return
        # every Content-Encoding header, as a proxy or the app could read any of them
        codings = [
            v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"content-encoding"
        ]
        encoding = ", ".join(c.strip().lower() for c in codings if c.strip()) or "identity"
        if encoding != "identity":  # never decoded: parsing gzip as JSON would be a vague 400
            err = APIError(
                415,
                "unsupported_content_encoding",
                f"request bodies are read as sent; Content-Encoding {encoding[:40]!r} "
                "is not supported: send the body uncompressed",
                param="content-encoding",
            )
            await _send_error(scope, receive, send, err)
            return
        declared = _header(scope, b"content-length")
        limit = self.max_body_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            await _send_error(scope, receive, send, _too_large(limit, int(declared)))
            return
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Counts body bytes as they stream in (chunked uploads have no Content-Length). Past the
        limit, reading fails inside the app, and whatever it answers is replaced by our 413."""
        received, exceeded, replaced = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _too_large(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await _send_error(scope, receive, send, _too_large(limit))
            elif not replaced:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


class UnhandledErrorMiddleware:
    """Answers an exception no handler caught with the 500 envelope. Starlette would send that
    500 from its ServerErrorMiddleware, outside every middleware added here, so it lacked CORS
    headers (a browser page could not read it) and `X-Request-ID`; this layer sits inside both."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:  # mid-response: too late for a status; the server drops the connection
                raise
            log.exception("unhandled error on %s", scope["path"])
            err = APIError(500, "internal_error", "internal server error")
            await _send_error(scope, receive, send, err)


async def _send_error(scope: Scope, receive: Receive, send: Send, err: APIError) -> None:
    request_id = scope.get("state", {}).get("request_id")
    body = error_body(
        err.status, err.code, err.message, param=err.param, limit=err.limit, request_id=request_id
    )
    await JSONResponse(body, err.status, headers=err.headers)(scope, receive, send)


def _too_large(limit: int, size: int | None = None) -> APIError:
    got = f", got {size} bytes" if size is not None else ""
    return APIError(
        413,
        "payload_too_large",
        f"request body is over the limit of {limit} bytes{got}",
        param="body",
        limit=limit,
    )
