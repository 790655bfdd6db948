import json

import pandas as pd
import pandera.pandas as pa
import pytest

from mlstack.validate import Checks, ValidationError, schema_failures, split_leakage


def test_split_leakage_names_each_pair_that_shares_keys():
    leaks = split_leakage({"train": ["a", "b", "c"], "val": ["d"], "test": ["c", "d"]})
    assert leaks == {
        "train/test": {"shared": 1, "examples": ["c"]},
        "val/test": {"shared": 1, "examples": ["d"]},
    }
    assert split_leakage({"train": ["a"], "val": ["b"], "test": []}) == {}


def test_schema_failures_collects_every_broken_check():
    schema = pa.DataFrameSchema(
        {"x": pa.Column(int, pa.Check.in_range(0, 5)), "y": pa.Column(str, unique=True)}
    )
    ok = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert schema_failures(ok, schema) == []
    bad = pd.DataFrame({"x": [1, 9], "y": ["a", "a"]})
    found = {(f["column"], f["failing"]) for f in schema_failures(bad, schema)}
    assert ("x", 1) in found and any(column == "y" for column, _ in found)


def test_checks_write_the_report_then_fail_loudly(tmp_path):
    checks = Checks()
    checks.add("fine", True)
    checks.threshold("recall", 0.5, floor=0.8)
    with pytest.raises(ValidationError, match="recall"):
        checks.finish(tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["failed"] == ["recall"]
    assert report["checks"]["recall"]["detail"] == {"value": 0.5, "floor": 0.8}


def test_checks_pass_and_the_report_is_deterministic(tmp_path):
    def run() -> str:
        checks = Checks()
        checks.threshold("accuracy", 0.93, floor=0.9)
        checks.finish(tmp_path / "r.json")
        return (tmp_path / "r.json").read_text()

    assert run() == run()
    assert json.loads(run())["passed"] is True
