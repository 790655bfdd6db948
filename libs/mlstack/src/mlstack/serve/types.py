"""Request field types that mean what JSON Schema says, so the OpenAPI document and the code agree
(schemathesis checks both directions)."""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def json_int(**bounds: Any) -> Any:
    """An integer field: 3 and 3.0 pass, "3", true and 3.5 are refused. `bounds`: ge, le...
    They sit before the validator so the JSON schema says minimum/maximum (after it, pydantic
    writes them as unknown keys on a function schema, which no client checks)."""
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(integral)]
