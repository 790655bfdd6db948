"""Pipeline parameters: the `image_classifier` section of the repository's `params.yaml`."""

from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["image_classifier"]


def model_params(name: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    models = load_params(path)["models"]
    if name not in models:
        raise KeyError(f"unknown model {name!r}; params.yaml defines {', '.join(models)}")
    return models[name]
