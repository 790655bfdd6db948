"""Validation errors that name the field a client sent: mlstack drops pydantic's union branch
labels (`messages.0.content.constrained-str`); here a message's role and a response format's
type, which pick their schemas, come out of locations too, and an unknown field is a 400."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from llm_chat.schemas import NOT_BLANK
from mlstack.serve.errors import APIError, body_of, error_response, validation_error
from mlstack.serve.errors import tidy as mlstack_tidy

ROLES = {"system", "user", "developer", "assistant", "tool"}
FORMATS = {"text", "json_object", "json_schema"}  # response_format's tags, which pydantic adds


def _say(error: dict) -> dict:
    parts = error.get("loc", ())
    # A message's role (a format's type) picks its schema; pydantic puts it in the location.
    loc = tuple(
        p
        for i, p in enumerate(parts)
        if not (p in ROLES and i and isinstance(parts[i - 1], int))
        and not (p in FORMATS and i and parts[i - 1] == "response_format")
    )
    if (
        error.get("type") == "string_pattern_mismatch"
        and error.get("ctx", {}).get("pattern") == NOT_BLANK
    ):
        return {**error, "loc": loc, "msg": "must hold a non-whitespace character and no NUL"}
    return {**error, "loc": loc}


def tidy(errors: list[dict]) -> list[dict]:
    return [_say(e) for e in mlstack_tidy(errors)]


def install_validation_handler(app: FastAPI) -> None:
    def handler(request: Request, exc: RequestValidationError):
        errors = tidy(list(exc.errors()))
        # A field this server does not know is a feature it does not offer: say so (400), as
        # OpenAI does for an unknown parameter, rather than a validation error (422).
        unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
        if unknown:
            param = ".".join(str(p) for p in unknown[0]["loc"][1:])
            return error_response(
                request,
                APIError(
                    400,
                    "unsupported_parameter",
                    f"{param} is not supported by this server",
                    param=param,
                ),
            )
        return error_response(request, validation_error(errors, **body_of(request)))

    app.add_exception_handler(RequestValidationError, handler)
