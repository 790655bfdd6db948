"""Checks that stop a pipeline before it trains or evaluates on bad data or a broken model.

Shared by the image classifier's and the semantic search's validation and behaviour stages:

    checks = Checks()
    checks.frame("images", frame, schema)            # a pandera schema, every failure collected
    checks.add("no_leakage", not leaks, leaks)       # any other check, with what it found
    checks.finish(Path("reports/x/validation.json"))  # writes the report, raises if one failed

The report is a DVC metrics file: deterministic (no timestamps), so an unchanged input gives an
unchanged file and the stages downstream of it do not rerun.
"""

import hashlib
import itertools
import json
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

# Enough failing values to see the pattern in the report without copying the data set into it.
EXAMPLES = 5


class ValidationError(RuntimeError):
    """One or more checks failed; the message names each one and what it found."""


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_leakage(
    keys: Mapping[str, Iterable[Hashable]], examples: int = EXAMPLES
) -> dict[str, dict[str, Any]]:
    """Keys (content hashes, normalised texts, ids) found in more than one split: for every pair
    of splits that share any, how many and a few of them. Empty when the splits are disjoint."""
    sets = {name: set(values) for name, values in keys.items()}
    leaks = {}
    for (a, ka), (b, kb) in itertools.combinations(sets.items(), 2):
        shared = ka & kb
        if shared:
            leaks[f"{a}/{b}"] = {
                "shared": len(shared),
                "examples": sorted(map(str, shared))[:examples],
            }
    return leaks


def schema_failures(frame: Any, schema: Any) -> list[dict[str, Any]]:
    """Every way `frame` breaks the pandera `schema` (validated lazily: all checks run), one entry
    per column and check with the number of failing rows and a few failing values."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        failures.append(
            {
                "column": None if column != column else str(column),  # NaN: a frame-wide check
                "check": str(check),
                "failing": len(group),
                "examples": [str(v) for v in group["failure_case"].head(EXAMPLES)],
            }
        )
    return failures


class Checks:
    """Named pass/fail checks and their details, reported together: one run shows every problem,
    not only the first."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.figures: dict[str, Any] = {}

    def add(self, name: str, passed: bool, detail: Any = None) -> bool:
        self.results[name] = {"passed": bool(passed)}
        if detail is not None:
            self.results[name]["detail"] = detail
        return bool(passed)

    def frame(self, name: str, frame: Any, schema: Any) -> bool:
        failures = schema_failures(frame, schema)
        return self.add(name, not failures, {"rows": len(frame), "failures": failures})

    def threshold(self, name: str, value: float, *, floor: float) -> bool:
        """A measured figure that must reach `floor` (a rate, an accuracy, a share)."""
        return self.add(name, value >= floor, {"value": round(float(value), 4), "floor": floor})

    @property
    def failed(self) -> list[str]:
        return [name for name, r in self.results.items() if not r["passed"]]

    def report(self) -> dict[str, Any]:
        return {
            "passed": not self.failed,
            "failed": self.failed,
            **self.figures,
            "checks": self.results,
        }

    def finish(self, path: Path) -> dict[str, Any]:
        """Writes the report, then raises `ValidationError` if any check failed: the report is
        there to read either way, and the stage (and everything after it) stops."""
        report = self.report()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        if self.failed:
            lines = [f"{len(self.failed)} check(s) failed (report: {path}):"]
            lines += [f"  {n}: {json.dumps(self.results[n].get('detail'))}" for n in self.failed]
            raise ValidationError("\n".join(lines))
        return report
