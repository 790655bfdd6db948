"""Inference log rotation and sampling; the drift job's reports, gauge and exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from mlstack.monitor.drift import drift_report
from mlstack.monitor.inference_log import InferenceLog, read_inference_log


def test_inference_log_rotates_and_reads_back(tmp_path):
    log = InferenceLog(tmp_path, max_bytes=2000, backup_count=3)
    for i in range(300):
        log.log({"x": i, "label": "a"})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 and files[0] == f"inference-{os.getpid()}.jsonl"
    frame = read_inference_log(tmp_path)
    assert 0 < len(frame) < 300 and {"ts", "x", "label"} <= set(frame.columns)  # oldest dropped


def test_inference_log_sampling(tmp_path):
    log = InferenceLog(tmp_path, sample_rate=0.1)
    written = sum(log.log({"x": i}) for i in range(2000))
    log.close()
    assert 100 < written < 300


def frames(shift: float, n: int = 300):
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "brightness": rng.normal(0.3, 0.05, n),
            "contrast": rng.normal(0.2, 0.05, n),
            "label": rng.choice(list("abc"), n),
        }
    )
    cur = pd.DataFrame(
        {
            "brightness": rng.normal(0.3 + shift, 0.05, n),
            "contrast": rng.normal(0.2 + shift, 0.05, n),
            "label": rng.choice(list("abc"), n),
        }
    )
    return ref, cur


def test_drift_report_finds_shifted_columns(tmp_path):
    ref, cur = frames(shift=0.2)
    result = drift_report(ref, cur, tmp_path, threshold=0.5)
    assert sorted(result.drifted_columns) == ["brightness", "contrast"]
    assert abs(result.drift_share - 2 / 3) < 1e-9 and result.drifted
    assert (tmp_path / "drift.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "summary.json").read_text())["drifted"] is True
    same = drift_report(*frames(shift=0.0), tmp_path / "same")
    assert same.drift_share < 0.5 and not same.drifted


def run_cli(tmp_path, shift: float) -> subprocess.CompletedProcess:
    ref, cur = frames(shift)
    ref.to_parquet(tmp_path / "ref.parquet")
    logs = tmp_path / f"logs-{shift}"
    log = InferenceLog(logs)
    for row in cur.to_dict("records"):
        log.log(row)
    log.close()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "drift",
            "--reference",
            str(tmp_path / "ref.parquet"),
            "--log-dir",
            str(logs),
            "--out",
            str(tmp_path / f"out-{shift}"),
            "--model",
            "digits",
            "--threshold",
            "0.5",
        ],
        capture_output=True,
        text=True,
    )


def test_drift_cli_exit_codes_and_gauge(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    drifted = run_cli(tmp_path, shift=0.2)
    assert drifted.returncode == 1, drifted.stderr
    assert "drift share 0.667" in drifted.stdout
    text = (tmp_path / "out-0.2" / "drift.prom").read_text()
    gauges = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert gauges["model_drift_share"].labels == {"model": "digits"}
    assert abs(gauges["model_drift_share"].value - 2 / 3) < 1e-6
    assert gauges["model_drift_detected"].value == 1
    assert run_cli(tmp_path, shift=0.0).returncode == 0
