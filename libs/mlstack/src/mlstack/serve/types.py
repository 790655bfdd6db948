"""Request field types that mean what JSON Schema says, so the OpenAPI document and the code agree
(schemathesis checks both directions)."""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def json_int(**bounds: Any) -> Any:
    """An integer field: 3 and 3.0 pass, "3", true and 3.5 are refused. `bounds`: ge, le..."""
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(integral)]
