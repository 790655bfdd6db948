"""write_stage_report: a stage's JSON report, written where DVC expects it and returned."""

import json

from mlstack.stage_report import write_stage_report


def test_the_stage_report_is_written_with_its_folder_and_returned(tmp_path):
    report = {"question": "Où est Zürich ?", "recall": 0.5}
    path = tmp_path / "reports" / "stage" / "report.json"
    assert write_stage_report(path, report) is report
    assert path.read_text() == json.dumps(report, indent=2, ensure_ascii=False)
    assert "Zürich" in path.read_text()
