"""What the index holds (`Document`), how a search is narrowed (`Filters`) and what comes back (`Hit`)."""

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_ID_CHARS = 256
DocId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, strip_whitespace=True)
]
Scalar = str | int | float | bool


class Document(BaseModel):
    """One retrievable unit: an article, a chunk of a file, a product description..."""

    model_config = ConfigDict(extra="forbid")

    id: DocId
    text: str = Field(min_length=1)
    title: str = ""
    topic: str = ""
    source: str = ""
    date: dt.date | None = None
    metadata: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty or whitespace")
        return value

    def date_key(self) -> int:
        """The date as YYYYMMDD (0 when unknown): an integer every backend compares natively."""
        return int(self.date.strftime("%Y%m%d")) if self.date else 0

    @staticmethod
    def date_from_key(key: int | None) -> dt.date | None:
        return dt.datetime.strptime(str(key), "%Y%m%d").date() if key else None


class Filters(BaseModel):
    """Metadata filters, the same in every search mode and backend. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    topic: list[str] | None = Field(default=None, max_length=64)
    source: list[str] | None = Field(default=None, max_length=64)
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @field_validator("topic", "source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def is_empty(self) -> bool:
        return not (self.topic or self.source or self.date_from or self.date_to)

    def date_range(self) -> tuple[int | None, int | None]:
        key = lambda d: int(d.strftime("%Y%m%d")) if d else None  # noqa: E731
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
