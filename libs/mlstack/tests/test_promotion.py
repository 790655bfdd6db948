"""The promotion gate's branches on a real sqlite registry, and the lineage hashes."""

import shutil

import pytest

from mlstack.train.promotion import (
    dataset_hash,
    git_commit,
    lineage_tags,
    params_hash,
    promote,
)
from mlstack.train.tracking import mlflow_run, register_model


def test_hashes_ignore_order_and_location_but_not_content(tmp_path):
    for name, text in (("a.png", "A"), ("b.png", "B")):
        (tmp_path / name).write_text(text)
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    original = dataset_hash([(tmp_path / "a.png", "1"), (tmp_path / "b.png", "2")])
    assert original == dataset_hash([(moved / "b.png", "2"), (moved / "a.png", "1")])
    assert original != dataset_hash([(tmp_path / "a.png", "2"), (tmp_path / "b.png", "1")])
    assert params_hash({"lr": 0.1, "epochs": 2}) == params_hash({"epochs": 2, "lr": 0.1})
    assert params_hash({"lr": 0.1}) != params_hash({"lr": 0.2})
    tags = lineage_tags(params={"lr": 0.1}, data_hash=original, metrics={"acc": 0.5})
    assert tags["lineage.git_commit"] == git_commit() and tags["metrics.acc"] == "0.5"


def test_gate_promotes_refuses_and_rescores_on_another_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    import mlflow

    client = mlflow.MlflowClient()

    def new_version() -> str:
        with mlflow_run("gate") as run:
            mlflow.log_text("weights", "model/weights.txt")
        return register_model(run.info.run_id, "model", "m")

    def gate(score: float, heldout: str = "set-a", **kwargs):
        return promote(
            "m",
            new_version(),
            metric="acc",
            score=score,
            heldout_hash=heldout,
            min_gain=0.01,
            **kwargs,
        )

    first = gate(0.80)
    assert first.promoted and first.reason == "no champion" and first.alias == "champion"
    within = gate(0.805)  # better, but not by more than the margin
    assert not within.promoted and within.alias == "challenger"
    assert within.champion_scored == "recorded" and within.champion_score == 0.80
    assert "not more than min_gain 0.01" in within.reason
    better = gate(0.85)
    assert better.promoted and better.reason.startswith("promoted: acc 0.8500 vs champion v1")
    assert str(client.get_model_version_by_alias("m", "champion").version) == better.version
    assert str(client.get_model_version_by_alias("m", "challenger").version) == within.version

    # scored on another held-out set: refused without a way to re-score the champion ...
    blind = gate(0.99, heldout="set-b")
    assert not blind.promoted and "no evaluator" in blind.reason
    assert client.get_model_version("m", blind.version).tags["promotion.reason"] == blind.reason
    # ... and decided on the champion's score on the new set with one
    seen = []
    rescored = gate(0.90, heldout="set-b", evaluate_champion=lambda v: seen.append(v) or 0.95)
    assert [str(v.version) for v in seen] == [better.version]
    assert rescored.champion_scored == "re-evaluated" and rescored.champion_score == 0.95
    assert not rescored.promoted and "gain -0.0500" in rescored.reason
    tags = client.get_model_version("m", rescored.version).tags
    assert tags["promotion.decision"] == "challenger" and tags["gate.heldout_hash"] == "set-b"
    assert tags["promotion.champion_score"] == "0.95"


@pytest.mark.parametrize("score,promoted", [(0.28, True), (0.295, False)])
def test_lower_is_better_metrics(tmp_path, monkeypatch, score, promoted):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    import mlflow

    decisions = []
    for value in (0.30, score):
        with mlflow_run("gate") as run:
            mlflow.log_text("w", "model/w.txt")
        version = register_model(run.info.run_id, "model", "loss-model")
        decisions.append(
            promote(
                "loss-model",
                version,
                metric="loss",
                score=value,
                heldout_hash="h",
                min_gain=0.01,
                higher_is_better=False,
            )
        )
    assert decisions[1].promoted is promoted


def test_a_tracking_uri_set_after_the_default_was_used_is_honoured(tmp_path, monkeypatch):
    """The default store, used once with no MLFLOW_TRACKING_URI, must not stick to the process:
    a later variable (a test's own registry, a job pointed at a server) decides where runs go.
    It stuck before: every later test in that worker shared the first one's registry."""
    from mlstack.train.tracking import _mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert _mlflow().get_tracking_uri().endswith("mlflow.db")
    own = f"sqlite:///{tmp_path / 'own.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)
    assert _mlflow().get_tracking_uri() == own
