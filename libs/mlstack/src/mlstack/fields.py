"""Request field types that mean what JSON Schema says, so the OpenAPI document and the code agree
(schemathesis checks both directions)."""

import datetime as dt
import re
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


# "Not empty or whitespace-only", as a pattern so the schema says it. The class is whitespace in
# every engine that reads it: Python's (\x1c-\x1f, \x85), ECMA's (\ufeff) and pydantic's Rust.
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


# NUL is in no real text, and PostgreSQL refuses it in a text column (a 500 where sqlite stored
# it): ids and names refuse it at the edge, as patterns so the schema says so (fuzzers and client
# generators read it). An id is short, so the pattern's backtracking stays small in Python's re.
NO_NUL = r"^[^\x00]*$"
ID = r"^[^\x00]*[^\s\x1c-\x1f\x85\ufeff\x00][^\x00]*$"  # not blank (as NOT_BLANK) and no NUL


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII: \d is any script's digit


def iso_date(value: Any) -> Any:
    """A "before" validator for a date field (`field_validator(..., mode="before")(iso_date)`):
    only a date or a YYYY-MM-DD string, as the schema's description says (pydantic alone would
    also take 0 as 1970-01-01)."""
    iso = isinstance(value, str) and ISO_DATE.fullmatch(value)
    if value is not None and not isinstance(value, dt.date) and not iso:
        raise ValueError("a date must be a YYYY-MM-DD string")
    return value


def is_blank(text: str) -> bool:
    """Blank as `NOT_BLANK` means it."""
    return re.search(NOT_BLANK, text) is None
