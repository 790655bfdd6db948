"""The DVC stages' work behind `image-classifier` (see dvc.yaml) where a stage is more than one
call: reading params.yaml's `image_classifier` section, the reports earlier stages wrote, and
where each stage's files go. Heavy modules are imported inside the functions, so the CLI's
`--help` stays fast."""

import json
import time
from pathlib import Path
from typing import Any

DATA = Path("data/image_classifier")
MODELS = Path("models/image_classifier")
REPORTS = Path("reports/image_classifier")
# What the drift job compares the inference log with (written by ic_prepare).
DRIFT_REFERENCE = DATA / "reference.parquet"


def prepare_stage(source: str | None = None) -> dict[str, Any]:
    """Stratified train/val/test manifests (and the digits images) under data/; `source`
    overrides params.yaml's."""
    from image_classifier.params import load_params
    from image_classifier.splits import prepare

    p = load_params()["data"]
    return prepare(
        source or p["source"],
        DATA,
        REPORTS / "data_report.json",
        val_size=p["val_size"],
        test_size=p["test_size"],
        seed=p["seed"],
    )


def distill_stage(teacher: str | None = None) -> dict[str, Any]:
    """Knowledge distillation with params.yaml's settings; `teacher` overrides its teacher."""
    from image_classifier.distill import DistillConfig
    from image_classifier.distill_report import run_stage
    from image_classifier.params import load_params

    params = load_params()
    cfg = DistillConfig.from_params(params["distill"])
    if teacher:
        cfg.teacher = teacher
    return run_stage(cfg, DATA, MODELS, REPORTS / "distill.json", params["quantize"])


def register_stage(names: list[str]) -> dict[str, Any]:
    """Register the models `names` with the behaviour reports ic_behaviour wrote for them (a
    model without one has not passed) and params.yaml's promotion gate."""
    from image_classifier.params import load_params
    from image_classifier.register import register

    missing = {"passed": False, "failed": ["no behaviour report (image-classifier behaviour)"]}
    reports = {n: REPORTS / n / "behaviour.json" for n in names}
    behaviour = {
        n: json.loads(r.read_text()) if r.exists() else missing for n, r in reports.items()
    }
    min_gain = load_params()["promotion"]["min_gain"]
    return register(MODELS, names, DATA, min_gain=min_gain, behaviour=behaviour)


def retrain_if_drift_stage(
    log_dir: Path, threshold: float, since_hours: float | None = None
) -> dict[str, Any]:
    """The drift job on the inference log in `log_dir` (records of the last `since_hours`, all
    when None) against DRIFT_REFERENCE; past `threshold`, `dvc repro` the ic stages."""
    from image_classifier.retrain import check_drift, retrain_if_drift, retrain_with_dvc

    since = time.time() - since_hours * 3600 if since_hours else None
    return retrain_if_drift(
        lambda: check_drift(
            DRIFT_REFERENCE, log_dir, REPORTS / "drift", threshold=threshold, since=since
        ),
        lambda: retrain_with_dvc(MODELS),
    )
