"""Drift-triggered retraining: the drift job on the recent inference log and, past its threshold,
retraining, evaluation and the promotion gate (`register`).

The retrain step is a function of params and paths: `make retrain-if-drift` passes
`retrain_with_dvc` (the `ic_*` stages through `dvc repro`, so data, models and reports stay
DVC-tracked), the tests pass `retrain` on tiny data and parameters. Both end in the same register
stage and gate.
"""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Forced: drift means the world changed, while the stages' deps may not have (a source folder
# that gained new labelled images is not a DVC dep of ic_prepare). ic_evaluate writes the test
# metrics; ic_register (upstream: prepare, train, export, quantize) runs the gate.
DVC_TARGETS = ("ic_evaluate", "ic_register")


def check_drift(
    reference: Path,
    log_dir: Path,
    out_dir: Path,
    *,
    threshold: float,
    since: float | None = None,
    columns: list[str] | None = None,
):
    """The drift job's report on the inference log; None when the log holds no record."""
    import pandas as pd

    from mlstack.monitor.drift import drift_report
    from mlstack.monitor.inference_log import read_inference_log

    current = read_inference_log(log_dir, since=since)
    if "role" in current.columns:  # a shadow's records are not more traffic
        current = current[current["role"].fillna("champion") == "champion"]
    if current.empty:
        return None
    return drift_report(
        pd.read_parquet(reference), current, out_dir, columns=columns, threshold=threshold
    )


def retrain(
    data_dir: Path,
    models_root: Path,
    reports_root: Path,
    params: dict[str, Any],
    names: list[str],
    *,
    progress: bool = False,
) -> dict:
    """Train, evaluate and register `names` with `params` (the `image_classifier` section's
    shape: `models.<name>` and `promotion.min_gain`) on already prepared `data_dir`."""
    from image_classifier.evaluate import evaluate_model
    from image_classifier.register import register
    from image_classifier.train import train_model

    for name in names:
        train_model(name, params["models"][name], data_dir, models_root / name, progress=progress)
        evaluate_model(models_root / name, data_dir, reports_root / name)
    return register(models_root, names, data_dir, min_gain=params["promotion"]["min_gain"])


def retrain_with_dvc(models_root: Path, targets: tuple[str, ...] = DVC_TARGETS) -> dict:
    """`dvc repro --force` of the image classifier's stages; the gate's decision that
    ic_register left in `promotion.json`."""
    subprocess.run(["dvc", "repro", "--force", *targets], check=True)
    return json.loads((models_root / "promotion.json").read_text())


def retrain_if_drift(drift: Callable[[], Any], retrain_step: Callable[[], dict]) -> dict[str, Any]:
    """Runs `drift()`; past its threshold, `retrain_step()`. Returns what happened, with the
    gate's decision when it retrained."""
    result = drift()
    if result is None:
        return {"drifted": None, "retrained": False, "reason": "no inference records"}
    summary: dict[str, Any] = {
        "drifted": result.drifted,
        "drift_share": result.drift_share,
        "threshold": result.threshold,
        "drifted_columns": result.drifted_columns,
        "retrained": False,
    }
    if not result.drifted:
        return summary
    registered = retrain_step()
    return summary | {
        "retrained": True,
        "candidate": registered["candidate"],
        "decision": registered["decision"],
    }
