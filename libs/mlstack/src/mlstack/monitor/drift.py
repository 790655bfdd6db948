"""Data drift between a reference set and recent traffic, with Evidently.

`mlstack drift` (see `mlstack.cli`) runs it as a job: HTML and JSON reports, the drift share as a
Prometheus gauge (a textfile-collector file, and a Pushgateway when given), and a non-zero exit
code when the share passes the threshold so a scheduler or CI can trigger retraining.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: list[str]
    columns: list[str]
    reference_rows: int
    current_rows: int
    threshold: float

    @property
    def drifted(self) -> bool:
        return self.drift_share > self.threshold


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: str | Path,
    *,
    columns: list[str] | None = None,
    threshold: float = 0.5,
) -> DriftResult:
    """Writes `drift.html`, `drift.json` and `summary.json` to `out_dir` and returns the result."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = columns or [c for c in reference.columns if c in current.columns and c != "ts"]
    if not columns:
        raise ValueError("reference and current data share no column")
    if current.empty:
        raise ValueError("the current data is empty: nothing was logged in the window")
    reference, current = reference[columns], current[columns]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(reference[c])]
    definition = DataDefinition(
        numerical_columns=numeric,
        categorical_columns=[c for c in columns if c not in numeric],
    )
    snapshot = Report([DataDriftPreset()]).run(
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
        current_data=Dataset.from_pandas(current, data_definition=definition),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out / "drift.html"))
    snapshot.save_json(str(out / "drift.json"))

    share, drifted = 0.0, []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift") and _is_drifted(config, metric["value"]):
            drifted.append(config["column"])
    result = DriftResult(share, drifted, columns, len(reference), len(current), threshold)
    (out / "summary.json").write_text(
        json.dumps({**asdict(result), "drifted": result.drifted}, indent=2)
    )
    return result


def _is_drifted(config: dict, value: float) -> bool:
    # p-value methods drift below the threshold; distance methods (Wasserstein, PSI...) above it
    if "p_value" in config.get("method", ""):
        return value < config["threshold"]
    return value >= config["threshold"]


def export_gauge(
    result: DriftResult, model: str, path: str | Path, pushgateway: str | None = None
) -> None:
    """Writes the drift share as `model_drift_share{model=...}` for Prometheus."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

    registry = CollectorRegistry()
    gauge = Gauge(
        "model_drift_share",
        "Share of drifted columns in the last drift report.",
        ["model"],
        registry=registry,
    )
    gauge.labels(model).set(result.drift_share)
    Gauge(
        "model_drift_detected",
        "1 when the drift share passed its threshold.",
        ["model"],
        registry=registry,
    ).labels(model).set(int(result.drifted))
    write_to_textfile(str(path), registry)
    if pushgateway:
        push_to_gateway(pushgateway, job=f"drift-{model}", registry=registry)
