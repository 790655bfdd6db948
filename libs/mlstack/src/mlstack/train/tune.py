"""An Optuna search that logs every trial to MLflow as a child run of one parent run."""

from collections.abc import Callable

from mlstack.train.tracking import _mlflow, mlflow_run


def tune(
    objective: Callable,
    *,
    n_trials: int,
    experiment: str,
    study_name: str,
    direction: str = "maximize",
    seed: int = 42,
    timeout_s: float | None = None,
):
    """Runs `objective(trial) -> float` `n_trials` times (TPE sampler, median pruner)."""
    import optuna

    mlflow = _mlflow()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=2),
    )

    def log_trial(study, trial) -> None:
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(trial.params)
            mlflow.set_tag("state", trial.state.name)
            if trial.value is not None:
                mlflow.log_metric("objective", trial.value)
        print(
            f"trial {trial.number}: {trial.state.name} value={trial.value} {trial.params}",
            flush=True,
        )

    with mlflow_run(experiment, run_name=f"optuna-{study_name}"):
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[log_trial])
        if study.best_trial is not None:
            mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
            mlflow.log_metric("best_objective", study.best_value)
    return study
