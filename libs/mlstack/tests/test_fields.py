"""iso_date: a date field takes a date or a YYYY-MM-DD string only."""

import datetime as dt

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from mlstack.fields import iso_date

# 2024-01-01 in Arabic-Indic digits: a digit to \d, not to the schema's [0-9]
ARABIC_INDIC_DIGITS = "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661"


class Dated(BaseModel):
    day: dt.date | None = None

    _iso_day = field_validator("day", mode="before")(iso_date)


@pytest.mark.parametrize(
    ("given", "day"),
    [
        ("2024-02-29", dt.date(2024, 2, 29)),
        (dt.date(2020, 1, 2), dt.date(2020, 1, 2)),
        (None, None),
    ],
)
def test_a_date_or_an_iso_string_is_taken(given, day):
    assert Dated(day=given).day == day


@pytest.mark.parametrize("given", [0, 1.5, True, "2024-1-1", "20240101", "", ARABIC_INDIC_DIGITS])
def test_anything_else_is_refused_naming_the_form(given):
    with pytest.raises(ValidationError, match="a date must be a YYYY-MM-DD string"):
        Dated(day=given)


def test_an_iso_string_that_is_no_date_is_refused_by_pydantic():
    with pytest.raises(ValidationError, match="month value is outside expected range"):
        Dated(day="2024-13-01")
