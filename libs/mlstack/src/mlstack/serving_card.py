"""Serving cards: the configuration a pipeline stage evaluated, written beside what the service
loads, so the service runs exactly that configuration, not its own defaults or numbers copied by
hand from a report.

    write_card(path, project="rag-chatbot", config={...}, params=p, metrics={...})  # the stage
    settings, serving = apply_card(settings, path)  # the service, at load

`config` maps the service's setting names to the values evaluated. A value set explicitly
(environment, `.env`, arguments) still wins, and is logged and listed as an override.
"""

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

log = logging.getLogger(__name__)
CARD_VERSION = 1
S = TypeVar("S", bound=BaseSettings)


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_card(
    path: str | Path,
    *,
    project: str,
    config: dict[str, Any],
    params: dict[str, Any],
    metrics: dict[str, Any],
    evaluated: dict[str, Any] | None = None,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Writes the card atomically (a service starting meanwhile reads the old one or the new
    one, never half of one); returns it. `evaluated`: what it was evaluated on and with."""
    from mlstack.export.onnx import git_commit

    card = {
        "card_version": CARD_VERSION,
        "project": project,
        "config": config,
        "evaluated": evaluated or {},
        "metrics": metrics,
        "params_hash": params_hash(params),
        "git_commit": git_commit(),
        "mlflow_run_id": mlflow_run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)
    return card


def read_card(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    card = json.loads(path.read_text())
    if card.get("card_version") != CARD_VERSION:
        raise ValueError(
            f"{path}: card_version {card.get('card_version')!r}, this service reads "
            f"{CARD_VERSION}: re-run the pipeline (`dvc repro`)"
        )
    return card


def apply_card(
    settings: S, path: str | Path | None, *, quiet: tuple[str, ...] = ()
) -> tuple[S, dict[str, Any]]:
    """-> (the settings with the card's value for every field not set explicitly, what the
    service shows of it on /v1/models). No card: the settings as they are, with a warning.
    `quiet`: fields a deployment remaps as a matter of course (paths inside a container), whose
    explicit value is listed but not warned about."""
    if path is None:
        log.info("no serving card configured: running the settings as given")
        return settings, {"card": None}
    card = read_card(path)
    if card is None:
        log.warning(
            "no serving card at %s: running the settings' defaults, not a configuration "
            "the pipeline evaluated (run `dvc repro`)",
            path,
        )
        return settings, {"card": None, "missing": str(path)}
    config, fields = card["config"], type(settings).model_fields
    unknown = sorted(set(config) - set(fields))
    if unknown:  # a service older than the pipeline cannot run what was evaluated
        raise ValueError(f"{path}: settings this service does not have: {', '.join(unknown)}")
    explicit = settings.model_fields_set
    current = settings.model_dump(mode="json")
    overrides = {k: current[k] for k in config if k in explicit and current[k] != config[k]}
    loud = {k: v for k, v in overrides.items() if k not in quiet}
    if loud:
        log.warning(
            "running settings other than the serving card's (%s): %s",
            path,
            ", ".join(f"{k}={v!r} (card: {config[k]!r})" for k, v in loud.items()),
        )
    update = {k: v for k, v in config.items() if k not in explicit}
    # Validated as the settings class validates (ranges, types); the environment is not re-read.
    validated = type(settings).model_validate({**settings.model_dump(), **update})
    merged = settings.model_copy(update={k: getattr(validated, k) for k in update})
    log.info(
        "serving card %s (params %s, commit %s)", path, card["params_hash"], card["git_commit"][:12]
    )
    shown = {
        k: card[k]
        for k in (
            "project",
            "config",
            "evaluated",
            "metrics",
            "params_hash",
            "git_commit",
            "mlflow_run_id",
            "created_at",
        )
    }
    return merged, {"card": str(path), **shown, "overrides": overrides}


def warn_if_changed(serving: dict[str, Any], key: str, actual: str) -> None:
    """Logs when an artifact the service loaded (by checksum) is not the one evaluated."""
    expected = serving.get("evaluated", {}).get(key) if serving.get("card") else None
    if expected is not None and expected != actual:
        log.warning(
            "%s: %s differs from the serving card's (%s): the card was evaluated on "
            "another artifact",
            key,
            actual[:16],
            expected[:16],
        )
