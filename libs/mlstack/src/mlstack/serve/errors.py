"""One error envelope for every error a service returns.

The shape is OpenAI's (`{"error": {"message", "type", "param", "code"}}`) so OpenAI clients parse
it, extended with `limit` and `request_id`:

    {"error": {"code": "too_many_images", "message": "at most 32 images per request, got 40",
               "type": "invalid_request_error", "param": "images", "limit": 32,
               "request_id": "6f1c..."}}
"""

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("mlstack.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class APIError(Exception):
    """An error with an HTTP status, a machine-readable code and the field and limit at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        limit: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.param, self.limit, self.headers = param, limit, headers or {}


def error_body(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    limit: Any = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    error = {
        "code": code,
        "message": message,
        "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "param": param,
    }
    if limit is not None:
        error["limit"] = limit
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_response(request: Request, err: APIError) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = error_body(
        err.status, err.code, err.message, param=err.param, limit=err.limit, request_id=request_id
    )
    return JSONResponse(body, status_code=err.status, headers=err.headers)


# Errors that only say "this union branch is another type": the least useful to report.
_MISMATCH = ("_type", "literal_error", "none_required", "is_instance_of")


def is_union_branch(part: Any) -> bool:
    """A union branch label pydantic puts in a location: 'constrained-str', 'list[TextPart]',
    'str', 'none'. For `x: str | list[str]` it reports one error per branch, at `x.str` and
    `x.list`, the type mismatch of the branch the client did not mean first."""
    return isinstance(part, str) and (
        "[" in part or part in _SCALAR_BRANCHES or _BRANCH.fullmatch(part) is not None
    )


_SCALAR_BRANCHES = {"str", "int", "float", "bool", "none", "list", "dict"}
# pydantic-core's schema kinds, as in "constrained-str", "function-after"; a client's own
# hyphenated key ("page-count") is not one of them
_BRANCH = re.compile(r"(constrained|function|json|lax|tagged|nullable|default|typed)-[a-z-]+")


def tidy(errors: list[dict]) -> list[dict]:
    """Constraint errors before type mismatches (stable), branch labels out of locations: the
    first error is then the one of the branch the client meant, at the field they sent."""

    def rank(error: dict) -> int:
        return 1 if error.get("type", "").endswith(_MISMATCH) else 0

    return [
        {**e, "loc": tuple(p for p in e.get("loc", ()) if not is_union_branch(p))}
        for e in sorted(errors, key=rank)
    ]


# Bodies a route may read: JSON, or a form (uploads); anything else never parses as either.
_BODY_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


def body_of(request: Request) -> dict[str, Any]:
    """What `validation_error` needs to know of a request's body: its type, whether one came."""
    headers = request.headers
    sent = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
    return {"content_type": headers.get("content-type"), "body_sent": sent}


def validation_error(
    errors: list[dict], content_type: str | None = None, body_sent: bool = False
) -> APIError:
    """Pydantic's errors as our envelope: the first error's field (dotted path), message and limit;
    400 for a body that is not JSON or missing, 415 for a body sent as another media type
    (`content_type`, the request's header). Routes that validate by hand raise this too."""
    errors = tidy(errors)
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    media = (content_type or "").split(";")[0].strip().lower()
    missing = loc == ["body"] and first.get("type") == "missing"  # no body at all
    # a body sent without a type (FastAPI does not parse it), or with one no route reads
    untyped = body_sent and not media and loc[:1] == ["body"]
    other = loc[:1] == ["body"] and media not in ("", *_BODY_TYPES) and not media.endswith("+json")
    if untyped or other:
        return APIError(
            415,
            "unsupported_media_type",
            f"Content-Type {media[:60] or '(none)'} is not read here: send application/json "
            "(multipart/form-data for file uploads)",
            param="content-type",
        )
    if missing:
        return APIError(400, "missing_body", "a JSON request body is required", param="body")
    if loc and loc[0] in ("body", "query", "path", "header"):  # where it came from, not a field
        loc = loc[1:]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return APIError(
            400, "invalid_json", f"request body is not valid JSON: {first.get('msg')}", param="body"
        )
    ctx = first.get("ctx") or {}
    limit = ctx.get("le", ctx.get("max_length", ctx.get("ge")))
    message = f"{param or 'request'}: {first.get('msg', 'invalid value')}"
    return APIError(
        422,
        "invalid_" + first.get("type", "value"),
        message,
        param=param,
        limit=limit if isinstance(limit, int | float | str) else None,
    )


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(request, validation_error(list(exc.errors()), **body_of(request)))


def allowed_methods(request: Request) -> list[str]:
    """Every method any route of this path answers. Starlette's own 405 names only the first
    route that matched the path, so GET + DELETE on one path said `Allow: GET`."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= route.methods
    return sorted(methods)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 400: "invalid_body"}
    err = APIError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
    err.headers = dict(exc.headers or {})
    if (
        exc.status_code == 400
    ):  # FastAPI's answer to a body it could not parse (e.g. nested too deep)
        err.param = "body"
    if exc.status_code == 405:
        err.headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(request, err)


def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    """Only for errors outside UnhandledErrorMiddleware. Starlette calls this after its except
    block, where `log.exception` finds no exception: hence `exc_info=exc`."""
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(request, APIError(500, "internal_error", "internal server error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, lambda request, exc: error_response(request, exc))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
