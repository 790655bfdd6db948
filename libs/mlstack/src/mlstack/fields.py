"""Request field types that mean what JSON Schema says, so the OpenAPI document and the code agree
(schemathesis checks both directions)."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field


def integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def json_int(**bounds: Any) -> Any:
    """An integer field: 3 and 3.0 pass, "3", true and 3.5 are refused. `bounds`: ge, le...
    They sit before the validator so the JSON schema says minimum/maximum (after it, pydantic
    writes them as unknown keys on a function schema, which no client checks)."""
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(integral)]


# "Not empty or whitespace-only", as a pattern so the schema says it. The class is whitespace in
# every engine that reads it: Python's (\x1c-\x1f, \x85), ECMA's (\ufeff) and pydantic's Rust.
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters (\\x00)")
    return text


# NUL is in no real text, and PostgreSQL refuses it in a text column (a 500 where sqlite stored
# it): refused at the edge for ids and names. A validator, not a pattern: a field has one pattern.
NO_NUL = AfterValidator(_no_nul)


def is_blank(text: str) -> bool:
    """Blank as `NOT_BLANK` means it."""
    return re.search(NOT_BLANK, text) is None
