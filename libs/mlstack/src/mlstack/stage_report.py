"""A pipeline stage's report: the JSON file it leaves under reports/ (DVC tracks it as a metric)
and returns, so a stage can end with `return write_stage_report(...)`."""

import json
from pathlib import Path
from typing import Any


def write_stage_report(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Writes `report` to `path` (its folder made) as indented JSON, non-ASCII text as itself
    (questions and answers stay readable in a diff); returns `report`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
