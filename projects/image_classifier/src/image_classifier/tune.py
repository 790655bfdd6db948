"""Optional Optuna search (the `tune` DVC stage is not in the default pipeline's path)."""

import json
from pathlib import Path

from image_classifier.params import model_params
from image_classifier.train import EXPERIMENT, train_model
from mlstack.train.tune import tune


def run_search(name: str, trials: int, data_dir: Path, out: Path) -> dict:
    base = model_params(name)

    def objective(trial) -> float:
        params = {
            **base,
            "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-3, 0.1, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
            "epochs": min(base["epochs"], 10),
        }
        card = train_model(
            name,
            params,
            data_dir,
            Path("/tmp") / f"tune-{name}-{trial.number}",
            log_mlflow=False,
            progress=False,
        )
        return card["val_accuracy"]

    study = tune(objective, n_trials=trials, experiment=EXPERIMENT, study_name=f"{name}-search")
    result = {
        "best_value": study.best_value,
        "best_params": study.best_params,
        "trials": [
            {"number": t.number, "value": t.value, "params": t.params} for t in study.trials
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result
