"""Register stage: every trained model becomes an MLflow model version with its lineage; the best
of this run on validation goes through the promotion gate (`mlstack.train.promotion`) against the
registry's current champion, scored on the same validation set.

Only a promoted model is copied to `champion/` (its ONNX files and card) and named by
`champion.json`: when the gate refuses, both stay as they were, so the service keeps serving the
old champion even though a retrain overwrote the per-family folders. `promotion.json` holds the
last decision either way.
"""

import json
from pathlib import Path
from typing import Any

from image_classifier.splits import SPLITS, read_split
from mlstack.train.promotion import (
    dataset_hash,
    git_commit,
    lineage_tags,
    params_hash,
    promote,
    record_skipped,
)
from mlstack.train.tracking import _mlflow, register_model

REGISTERED_NAME = "image-classifier-digits"
METRIC = "val_accuracy"
# What the service and the registry's champion need; history and plots stay with the run.
SERVING_FILES = ("model.int8.onnx", "model.onnx", "model.safetensors", "card.json")


def val_accuracy(model_dir: Path, data_dir: Path) -> float:
    """Accuracy of the checkpoint in `model_dir` on the validation split, with its own card's
    preprocessing: the one scorer the gate uses for the candidate and the champion alike."""
    from image_classifier.dataset import ImageDataset
    from image_classifier.models import build_model
    from image_classifier.train import predict_logits
    from image_classifier.transforms import Preprocess
    from mlstack.train.loop import load_checkpoint

    card = json.loads((model_dir / "card.json").read_text())
    model = build_model(card["name"], len(card["labels"]), card["params"], pretrained=False)
    load_checkpoint(model, model_dir / "model.safetensors")
    val = ImageDataset(
        read_split(data_dir, "val"), card["labels"], Preprocess.from_dict(card["preprocess"])
    )
    x, y = val.arrays()
    return float((predict_logits(model, x).argmax(1) == y).mean())


def split_hashes(data_dir: Path) -> dict[str, str]:
    """Content hashes of each split and of the whole data set (the lineage's data hash)."""
    hashes = {s: dataset_hash((x.path, x.label) for x in read_split(data_dir, s)) for s in SPLITS}
    # keyed by split: moving an image from train to val changes the data hash
    hashes["all"] = params_hash({s: hashes[s] for s in SPLITS})
    return hashes


def _champion_scorer(data_dir: Path):
    def score(model_version: Any) -> float:
        # the champion's own files from the registry, so a retrain that overwrote the local
        # folders cannot make the gate compare the candidate with itself
        local = _mlflow().artifacts.download_artifacts(artifact_uri=model_version.source)
        return val_accuracy(Path(local), data_dir)

    return score


def _log_serving_files(run_id: str, model_dir: Path) -> None:
    """The ONNX files exist only after export/quantize, after the train run closed: adding them
    to its `model/` artifacts makes the registered version hold what is served (the k8s
    fetch-models init container downloads `models:/...@champion`)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    for name in ("model.onnx", "model.int8.onnx", "card.json"):
        if (model_dir / name).exists():
            client.log_artifact(run_id, str(model_dir / name), artifact_path="model")


def _install_champion(models_root: Path, model_dir: Path) -> Path:
    from mlstack.registry import install_champion

    files = {name: model_dir / name for name in SERVING_FILES if (model_dir / name).exists()}
    return install_champion(files, models_root / "champion")


def register(
    models_root: Path,
    names: list[str],
    data_dir: Path,
    *,
    min_gain: float,
    track: bool = True,
    behaviour: dict[str, dict] | None = None,
) -> dict:
    """`behaviour`: ic_behaviour's report per model; one that failed its checks is registered
    (with why) but never the candidate, and with no model passing nothing is promoted."""
    cards = {n: json.loads((models_root / n / "card.json").read_text()) for n in names}
    hashes = split_hashes(data_dir)
    failed = {
        n: r["failed"] for n, r in (behaviour or {}).items() if n in names and not r["passed"]
    }
    eligible = [n for n in names if n not in failed]
    # validation, never test, picks the candidate and decides the gate: test stays unbiased
    scores = {n: val_accuracy(models_root / n, data_dir) for n in names}
    candidate = max(eligible, key=lambda n: (scores[n], -names.index(n))) if eligible else None
    result: dict[str, Any] = {
        "registered_model": REGISTERED_NAME,
        "candidate": candidate,
        "val_accuracy": scores,
        "behaviour_failed": failed,
        "heldout_hash": hashes["val"],
    }
    no_candidate = {"promoted": False, "reason": f"no model passed its behaviour checks: {failed}"}
    if not track:  # no registry: nothing to compare with, the run's best is served
        decision = {"promoted": True, "reason": "no registry (track=False)"}
        decision = decision if candidate else no_candidate
    else:
        # the repository of this code, not the working directory: the commit that trained it
        commit = git_commit(Path(__file__).resolve().parent)
        versions = {}
        for name in names:
            run_id = cards[name]["mlflow_run_id"]
            _log_serving_files(run_id, models_root / name)
            tags = {"family": name} | lineage_tags(
                params=cards[name]["params"],
                data_hash=hashes["all"],
                commit=commit,
                metrics={METRIC: scores[name], "train_val_accuracy": cards[name]["val_accuracy"]},
            )
            versions[name] = register_model(run_id, "model", REGISTERED_NAME, tags=tags)
        for name in names:
            if name in failed:
                why = f"failed its behaviour checks ({', '.join(failed[name])})"
                record_skipped(REGISTERED_NAME, versions[name], why)
            elif name != candidate:
                record_skipped(
                    REGISTERED_NAME,
                    versions[name],
                    f"not the best of its run on validation ({scores[name]:.4f} < "
                    f"{candidate} {scores[candidate]:.4f})",
                )
        decision = (
            promote(
                REGISTERED_NAME,
                versions[candidate],
                metric=METRIC,
                score=scores[candidate],
                heldout_hash=hashes["val"],
                min_gain=min_gain,
                evaluate_champion=_champion_scorer(data_dir),
            ).to_dict()
            if candidate
            else no_candidate
        )
        result["versions"] = versions
    result["decision"] = decision
    if decision["promoted"]:
        folder = _install_champion(models_root, models_root / candidate)
        champion = {
            "registered_model": REGISTERED_NAME,
            "champion": candidate,
            "champion_version": decision.get("version"),
            "onnx": str(folder / "model.int8.onnx"),
            "onnx_fp32": str(folder / "model.onnx"),
            "val_accuracy": scores[candidate],
            "heldout_hash": hashes["val"],
        }
        (models_root / "champion.json").write_text(json.dumps(champion, indent=2))
    (models_root / "promotion.json").write_text(json.dumps(result, indent=2))
    return result
