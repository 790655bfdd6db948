"""Makes the OpenAPI document say what the code answers: every error status a route can return,
with the error envelope's schema (FastAPI documents 422 in its own shape, which we never send).

Routes declare their own statuses with `responses=error_responses(400, 404)`; `document_errors`
adds the ones the kit itself answers on every API route: 401 (API key), 400 and 413 (a body that
does not parse, or is over the limit), 422 (validation) and 503 (not ready, busy).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    type: str
    param: str | None = None
    limit: int | float | str | None = None
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


DESCRIPTIONS = {
    400: "Invalid request (the field and the limit are named)",
    401: "Missing or wrong API key",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body, file or decoded content over a limit",
    415: "Unsupported media type",
    422: "Request does not match the schema",
    429: "Too many requests",
    500: "Internal error",
    502: "Upstream service failed",
    503: "Not ready yet, or busy: retry after `Retry-After` seconds",
    504: "Upstream service timed out",
}
_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
OPS_PATHS = ("/healthz", "/readyz")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: these statuses, each with the envelope schema."""
    return {
        s: {"model": ErrorEnvelope, "description": DESCRIPTIONS.get(s, "Error")} for s in statuses
    }


def _document(responses: dict[str, Any], status: int) -> None:
    responses[str(status)] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _REF}},
    }


def document_errors(app: FastAPI) -> None:
    """Replaces `app.openapi` with a generator that adds the kit's own error statuses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["ErrorDetail"] = components["ErrorEnvelope"].pop("$defs")["ErrorDetail"]
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                statuses = {503} if path in OPS_PATHS else {401, 503}
                if path not in OPS_PATHS and (
                    operation.get("parameters") or "requestBody" in operation
                ):
                    statuses.add(422)
                if "requestBody" in operation:
                    statuses |= {400, 413}  # a body that is not JSON at all; over the size limit
                for status in statuses:
                    if str(status) not in responses or status == 422:
                        _document(responses, status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
