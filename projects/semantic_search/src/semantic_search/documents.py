"""What the index holds (`Document`), how a search is narrowed (`Filters`) and what comes back
(`Hit`)."""

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    conlist,
    field_validator,
)

from mlstack.fields import ID, NOT_BLANK, iso_date

# Limits of what the index takes, in the API schema too (every one is a 422 naming the field).
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 100_000
MAX_TITLE_CHARS = 1000
MAX_LABEL_CHARS = 256  # topic, source and every filter value
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 4000
MAX_FILTER_VALUES = 64

DocId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=ID)]
Label = Annotated[str, StringConstraints(max_length=MAX_LABEL_CHARS)]
FilterValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS)]


def json_type(value: Any) -> str:
    """Which branch of a union a JSON value is for, so that a refusal states that branch's rule
    (a plain union reports its first branch: "input should be a valid string" for a NaN)."""
    if isinstance(value, bool):  # before int: True is an int to Python
        return "bool"
    return {int: "int", float: "float"}.get(type(value), "str")


# strict: JSON `true` is not 1, and "1" is not a number, as the schema says.
Scalar = Annotated[
    Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS), Tag("str")]
    | Annotated[bool, Field(strict=True), Tag("bool")]
    | Annotated[int, Field(strict=True), Tag("int")]
    | Annotated[float, Field(strict=True, allow_inf_nan=False), Tag("float")],
    Discriminator(json_type),
    # anyOf, not the oneOf pydantic writes: to JSON Schema 2 is an integer and a number both.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
                {"type": "boolean"},
                {"type": "integer"},
                {"type": "number"},
            ]
        }
    ),
]


def one_or_many(value: Any) -> str:
    return "list" if isinstance(value, list) else "str"


# One value or a list (not Field(max_length=...) on the union, which would limit the string).
OneOrMany = Annotated[
    Annotated[FilterValue, Tag("str")]
    | Annotated[conlist(FilterValue, max_length=MAX_FILTER_VALUES), Tag("list")],
    Discriminator(one_or_many),
]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS)]


class Document(BaseModel):
    """One retrievable unit: an article, a chunk of a file, a product description..."""

    model_config = ConfigDict(extra="forbid")

    id: DocId
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    topic: Label = ""
    source: Label = ""
    date: dt.date | None = Field(None, description="YYYY-MM-DD")
    metadata: dict[MetadataKey, Scalar] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    _iso_date = field_validator("date", mode="before")(iso_date)

    def date_key(self) -> int:
        """The date as YYYYMMDD (0 when unknown): an integer every backend compares natively."""
        return int(self.date.strftime("%Y%m%d")) if self.date else 0

    @staticmethod
    def date_from_key(key: int | None) -> dt.date | None:
        # Arithmetic, not strptime("%Y%m%d"): year 738 is the key 7381009, which has 7 digits.
        return dt.date(key // 10_000, key // 100 % 100, key % 100) if key else None


class Filters(BaseModel):
    """Metadata filters, the same in every search mode and backend. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    topic: OneOrMany | None = None
    source: OneOrMany | None = None
    date_from: dt.date | None = Field(None, description="YYYY-MM-DD")
    date_to: dt.date | None = Field(None, description="YYYY-MM-DD")

    _iso_dates = field_validator("date_from", "date_to", mode="before")(iso_date)

    @field_validator("topic", "source")
    @classmethod
    def _as_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    def is_empty(self) -> bool:
        return not (self.topic or self.source or self.date_from or self.date_to)

    def date_range(self) -> tuple[int | None, int | None]:
        def key(d) -> int | None:
            return int(d.strftime("%Y%m%d")) if d else None

        return key(self.date_from), key(self.date_to)

    def conditions(self, one_of) -> list[str]:
        """The filters as predicates in a backend's dialect; `one_of(field, values)` writes the
        membership test (with that dialect's quoting). Unknown dates (0) never match a range."""
        parts = [one_of(f, getattr(self, f)) for f in ("topic", "source") if getattr(self, f)]
        low, high = self.date_range()
        if low is not None:
            parts.append(f"date >= {low}")
        if high is not None:
            parts.append(f"date <= {high}")
            parts.append("date > 0")
        return parts


@dataclass
class Hit:
    """A document and its score in one ranking (cosine for dense, BM25 for text, RRF for hybrid)."""

    document: Document
    score: float
    vector: np.ndarray | None = None
