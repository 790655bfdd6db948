"""A small training loop, MLflow tracking and registry, and an Optuna helper.

The loop picks its device and precision (`device.py`), runs data-parallel under torchrun
(`distributed.py`), accumulates gradients and backs off on out-of-memory (`batching.py`), and
resumes from an atomic training state (`checkpoint.py`, `resume.py`): docs/training.md."""

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
