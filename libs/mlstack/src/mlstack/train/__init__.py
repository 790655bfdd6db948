"""A small training loop, MLflow tracking and registry, and an Optuna helper."""

from mlstack.train.loop import FitResult, TrainConfig, fit, seed_everything
from mlstack.train.tracking import mlflow_run, register_model, set_champion

__all__ = [
    "FitResult",
    "TrainConfig",
    "fit",
    "mlflow_run",
    "register_model",
    "seed_everything",
    "set_champion",
]
