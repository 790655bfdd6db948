"""Pipeline parameters: one section per project in the repository's `params.yaml`
(what DVC tracks)."""

from pathlib import Path
from typing import Any

PARAMS_FILE = Path("params.yaml")


def load_section(section: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    import yaml

    params = yaml.safe_load(path.read_text()) or {}
    if section not in params:
        raise KeyError(f"{path} has no {section!r} section (sections: {', '.join(params)})")
    return params[section]
