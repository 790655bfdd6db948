"""The training loop really learns; MLflow tracking, registry alias and Optuna on sqlite."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mlstack.train import TrainConfig, fit, mlflow_run, register_model, set_champion
from mlstack.train.loop import load_checkpoint
from mlstack.train.tracking import get_alias


def blobs(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 2)) + np.array([[0, 3], [3, 0], [-3, -3]])[y]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def make_fit(tmp_path, **config):
    x, y = blobs()
    vx, vy = blobs(seed=1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))

    def evaluate(m):
        logits = m(vx)
        return {
            "val_loss": F.cross_entropy(logits, vy).item(),
            "val_accuracy": (logits.argmax(1) == vy).float().mean().item(),
        }

    result = fit(
        model,
        DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
        loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]),
        evaluate=evaluate,
        config=TrainConfig(progress=False, **config),
        checkpoint_path=tmp_path / "best.safetensors",
    )
    return model, result


def test_fit_learns_and_saves_the_best_checkpoint(tmp_path):
    model, result = make_fit(tmp_path, epochs=8, lr=0.02, patience=8)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.5
    assert result.best_score > 0.9  # chance is 1/3
    state = load_file(result.checkpoint)
    assert set(state) == set(model.state_dict())
    fresh = load_checkpoint(
        nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)), result.checkpoint
    )
    assert torch.equal(fresh[0].weight, model[0].weight)  # restored best == saved best


def test_early_stopping(tmp_path):
    _, result = make_fit(tmp_path, epochs=50, lr=0.0, patience=2, warmup_ratio=0.0)
    assert result.stopped_early and len(result.history) == 3  # no progress with lr=0


def test_mlflow_run_registry_alias_and_optuna(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    with mlflow_run("exp", run_name="r1", params={"lr": 0.1}) as run:
        mlflow.log_metric("val_accuracy", 0.9, step=1)
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "weights.txt").write_text("w")
        mlflow.log_artifacts(str(tmp_path / "model"), artifact_path="model")
    assert (tmp_path / "mlflow.db").exists()  # the default local sqlite store
    version = register_model(run.info.run_id, "model", "demo-model")
    set_champion("demo-model", version)
    champion = get_alias("demo-model")
    assert (champion.version, champion.run_id) == (version, run.info.run_id)
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.params["lr"] == "0.1" and stored.data.metrics["val_accuracy"] == 0.9

    from mlstack.train.tune import tune

    study = tune(
        lambda t: -((t.suggest_float("x", -2, 2) - 1) ** 2),
        n_trials=4,
        experiment="exp",
        study_name="s",
    )
    assert len(study.trials) == 4
    runs = mlflow.search_runs(experiment_names=["exp"])
    assert (runs["tags.mlflow.runName"].str.startswith("trial-")).sum() == 4


@pytest.mark.parametrize(
    "mode,values,expected", [("max", [0.1, 0.5, 0.4], 2), ("min", [3, 1, 2], 2)]
)
def test_improvement_direction(mode, values, expected):
    from mlstack.train.loop import _improved

    best, best_epoch = (-np.inf if mode == "max" else np.inf), 0
    for epoch, v in enumerate(values, 1):
        if _improved(v, best, mode, 0.0):
            best, best_epoch = v, epoch
    assert best_epoch == expected
