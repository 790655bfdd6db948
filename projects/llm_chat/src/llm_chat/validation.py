"""Validation errors that name the field a client sent, not pydantic's union branches.

For `content: str | list[TextPart]`, pydantic reports one error per branch, located at
`messages.0.content.constrained-str` and `messages.0.content.list[TextPart]`, the type mismatch
of the branch the client did not mean first. We pick the error of the branch whose type
matches the input and drop the branch names from its location, then answer with mlstack's
envelope as usual. (A candidate for mlstack.serve.errors.validation_error.)"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from llm_chat.schemas import NOT_BLANK
from mlstack.serve.errors import APIError, error_response, validation_error

# Errors that only say "this union branch is another type": the least useful to report.
_MISMATCH = ("_type", "literal_error", "none_required", "is_instance_of")


def _is_branch(part) -> bool:
    """A union branch label such as 'constrained-str', 'list[TextPart]', 'str' or 'none'."""
    return isinstance(part, str) and (
        "[" in part or "-" in part or part in {"str", "int", "float", "bool", "none", "list"}
    )


ROLES = {"system", "user", "developer", "assistant", "tool"}
FORMATS = {"text", "json_object", "json_schema"}  # response_format's tags, which pydantic adds


def _say(error: dict) -> dict:
    parts = error.get("loc", ())
    # A message's role (a format's type) picks its schema; pydantic puts it in the location.
    loc = tuple(
        p
        for i, p in enumerate(parts)
        if not _is_branch(p)
        and not (p in ROLES and i and isinstance(parts[i - 1], int))
        and not (p in FORMATS and i and parts[i - 1] == "response_format")
    )
    if (
        error.get("type") == "string_pattern_mismatch"
        and error.get("ctx", {}).get("pattern") == NOT_BLANK
    ):
        return {**error, "loc": loc, "msg": "must hold a non-whitespace character and no NUL"}
    return {**error, "loc": loc}


def tidy(errors: list[dict]) -> list[dict]:
    def rank(error: dict) -> int:
        return 1 if error.get("type", "").endswith(_MISMATCH) else 0

    return [_say(e) for e in sorted(errors, key=rank)]  # stable: constraint errors first


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
        content_type = request.headers.get("content-type")
        return error_response(request, validation_error(errors, content_type))

    app.add_exception_handler(RequestValidationError, handler)
