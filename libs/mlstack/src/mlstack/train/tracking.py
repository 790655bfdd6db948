"""MLflow tracking and registry on the default local sqlite store.

`MLFLOW_TRACKING_URI` switches to a server (e.g. the compose `mlflow` service); unset, runs go to
`sqlite:///mlflow.db` and artifacts to `./mlruns`, with no server to start.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def _mlflow():
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # The default goes into the environment, not set_tracking_uri: that is process-wide and
    # wins over the variable, so a later MLFLOW_TRACKING_URI (a test's own registry, a job's
    # server) was ignored for the rest of the process once the default had been used.
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = DEFAULT_TRACKING_URI
    return mlflow


@contextlib.contextmanager
def mlflow_run(
    experiment: str,
    *,
    run_name: str | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Opens a run in `experiment` with its params logged; yields the `mlflow.ActiveRun`.

    Under `torchrun` only rank 0 tracks: the other ranks get `None` (one run per job, not one
    per process), so code that logs outside `fit()`'s `on_epoch_end` checks `run is not None`."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield None
        return
    mlflow = _mlflow()
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags, nested=nested) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield run


def register_model(
    run_id: str,
    artifact_path: str,
    name: str,
    *,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> str:
    """Registers `runs:/<run_id>/<artifact_path>` (any artifact folder: safetensors, ONNX) as a
    new version of `name`, without pyfunc packaging; returns the version."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(
        name, source, run_id=run_id, tags=tags, description=description
    )
    return version.version


def set_champion(name: str, version: str, alias: str = "champion") -> None:
    _mlflow().MlflowClient().set_registered_model_alias(name, alias, version)


def get_alias(name: str, alias: str = "champion"):
    """The model version behind an alias (its `.version`, `.run_id`, `.source`)."""
    return _mlflow().MlflowClient().get_model_version_by_alias(name, alias)
