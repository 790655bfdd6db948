"""The drift-triggered loop end to end on tiny data (issue 16 item 5): induced drift in the
inference log, retraining, evaluation, and the promotion gate against a real MLflow sqlite
registry: a first model promoted, a worse one (trained on shuffled labels) refused and left as
the challenger, with the reasons recorded on the versions, and the served files untouched."""

import csv
import json
import random
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from image_classifier.register import REGISTERED_NAME, register
from image_classifier.retrain import check_drift, retrain, retrain_if_drift
from image_classifier.splits import prepare
from mlstack.monitor.inference_log import InferenceLog

from .conftest import TINY

PARAMS = {
    "models": {
        "resnet": {
            **TINY,
            "image_size": 8,  # the digits' own size: the cheapest model that still learns
            "epochs": 2,
            "batch_size": 64,
            "lr": 0.01,
            "weight_decay": 0.0,
            "warmup_ratio": 0.0,
            "label_smoothing": 0.0,
            "patience": 2,
            "seed": 0,
            "pretrained": False,
            "augment": {"scale": [0.9, 1.0], "rotation": 0, "hflip": False},
        }
    },
    "promotion": {"min_gain": 0.005},
}


@pytest.fixture
def one_thread():
    """Tiny convolutions lose more to thread hand-offs than they gain, most on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fresh sqlite registry; artifacts under tmp_path/mlruns (MLflow's default, from cwd)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    import mlflow

    return mlflow.MlflowClient()


def shuffled_labels(data_dir, out):
    """The same splits with the training labels shuffled: the same validation set (same hash),
    a model that learns nothing."""
    shutil.copytree(data_dir, out, ignore=shutil.ignore_patterns("images"))
    with (data_dir / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [r["label"] for r in rows]
    random.Random(0).shuffle(labels)
    with (out / "train.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows([r["path"], label] for r, label in zip(rows, labels, strict=True))
    return out


def write_log(reference, log_dir, shift: float):
    """Inference records with the training set's image statistics, brighter by `shift`."""
    log = InferenceLog(log_dir)
    for row in pd.read_parquet(reference).head(300).to_dict("records"):
        log.log(
            {
                "model": "digits",
                "role": "champion",
                **row,
                "brightness": row["brightness"] + shift,
                "contrast": row["contrast"] + shift,
            }
        )
    log.close()
    return log_dir


def test_drift_retrains_promotes_then_refuses_a_worse_model(
    digits_dir, registry, tmp_path, one_thread
):
    models, reports = tmp_path / "models", tmp_path / "reports"
    reference = digits_dir / "reference.parquet"
    calm = write_log(reference, tmp_path / "calm", shift=0.0)
    drifted = write_log(reference, tmp_path / "drifted", shift=0.25)

    def loop(log_dir, data_dir):
        return retrain_if_drift(
            lambda: check_drift(reference, log_dir, tmp_path / "drift", threshold=0.3),
            lambda: retrain(data_dir, models, reports, PARAMS, ["resnet"]),
        )

    quiet = loop(calm, digits_dir)
    assert quiet["drifted"] is False and not quiet["retrained"] and not models.exists()

    first = loop(drifted, digits_dir)
    assert first["drifted"] and first["retrained"], first
    assert first["drift_share"] > 0.3 and {"brightness", "contrast"} <= set(
        first["drifted_columns"]
    )
    promoted = first["decision"]
    assert promoted["promoted"] and promoted["reason"] == "no champion", promoted
    assert promoted["score"] > 0.5  # chance is 0.1
    served = json.loads((models / "champion.json").read_text())
    assert served["champion_version"] == promoted["version"]
    champion_weights = (models / "champion" / "model.safetensors").read_bytes()

    worse = loop(drifted, shuffled_labels(digits_dir, tmp_path / "shuffled"))
    refused = worse["decision"]
    assert not refused["promoted"] and refused["alias"] == "challenger", refused
    assert refused["heldout_hash"] == promoted["heldout_hash"]  # the same validation set
    assert refused["champion_version"] == promoted["version"]
    assert refused["champion_score"] == pytest.approx(promoted["score"])
    assert refused["champion_scored"] == "recorded"
    assert refused["score"] < promoted["score"] - PARAMS["promotion"]["min_gain"]
    assert refused["reason"].startswith("refused: val_accuracy ")
    # the service keeps the old champion: champion.json and its folder were not touched
    assert json.loads((models / "champion.json").read_text()) == served
    assert (models / "champion" / "model.safetensors").read_bytes() == champion_weights
    assert json.loads((models / "promotion.json").read_text())["decision"] == refused

    # what the registry itself holds, read back from the sqlite store
    assert str(registry.get_model_version_by_alias(REGISTERED_NAME, "champion").version) == "1"
    assert str(registry.get_model_version_by_alias(REGISTERED_NAME, "challenger").version) == "2"
    v1 = registry.get_model_version(REGISTERED_NAME, "1").tags
    v2 = registry.get_model_version(REGISTERED_NAME, "2").tags
    assert (v1["promotion.decision"], v1["promotion.reason"]) == ("champion", "no champion")
    assert (v2["promotion.decision"], v2["promotion.reason"]) == ("challenger", refused["reason"])
    assert (
        v2["promotion.champion_version"] == "1"
        and v2["gate.heldout_hash"] == v1["gate.heldout_hash"]
    )
    for tags in (v1, v2):
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", tags["lineage.git_commit"])
        assert len(tags["lineage.params_hash"]) == 64
        assert float(tags["metrics.val_accuracy"]) == float(tags["gate.score"])
    assert v1["lineage.data_hash"] != v2["lineage.data_hash"]  # the labels changed
    assert v1["lineage.params_hash"] == v2["lineage.params_hash"]  # the params did not
    # the registered version holds the files to serve (what the k8s init container fetches)
    source = registry.get_model_version(REGISTERED_NAME, "1").source
    import mlflow

    fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path)))
    assert {"card.json", "model.safetensors"} <= {p.name for p in fetched.iterdir()}

    # a different validation split: the champion's recorded score does not apply, so the gate
    # re-scores the champion's registered files on the new split before deciding (the last
    # trained model registered again: no third training)
    resplit = tmp_path / "resplit"
    prepare("digits", resplit, tmp_path / "r.json", val_size=0.15, test_size=0.15, seed=1)
    third = register(models, ["resnet"], resplit, min_gain=0.005)["decision"]
    assert third["heldout_hash"] != promoted["heldout_hash"]
    assert third["champion_scored"] == "re-evaluated" and third["champion_version"] == "1"
    assert 0.5 < third["champion_score"] <= 1.0 and not third["promoted"]

    # a model that failed its behaviour checks (ic_behaviour --no-gate) is registered, never the
    # candidate: with no other model nothing is promoted, and the served files stay
    failing = {"resnet": {"passed": False, "failed": ["min_class_accuracy"]}}
    fourth = register(models, ["resnet"], resplit, min_gain=0.005, behaviour=failing)
    assert fourth["candidate"] is None and not fourth["decision"]["promoted"]
    assert "no model passed its behaviour checks" in fourth["decision"]["reason"]
    assert fourth["behaviour_failed"] == {"resnet": ["min_class_accuracy"]}
    v4 = registry.get_model_version(REGISTERED_NAME, fourth["versions"]["resnet"]).tags
    assert v4["promotion.reason"] == "failed its behaviour checks (min_class_accuracy)"
    assert json.loads((models / "champion.json").read_text()) == served
    assert str(registry.get_model_version_by_alias(REGISTERED_NAME, "champion").version) == "1"
