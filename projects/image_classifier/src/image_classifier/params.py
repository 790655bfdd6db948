"""Pipeline parameters: the `image_classifier` section of the repository's `params.yaml`."""

from pathlib import Path
from typing import Any

from mlstack.params import PARAMS_FILE, load_section


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    return load_section("image_classifier", path)


def model_params(name: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    models = load_params(path)["models"]
    if name not in models:
        raise KeyError(f"unknown model {name!r}; params.yaml defines {', '.join(models)}")
    return models[name]
