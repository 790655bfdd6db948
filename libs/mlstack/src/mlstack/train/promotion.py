"""Lineage tags and the promotion gate of the MLflow model registry.

Every registered version carries where it came from (`lineage.*`: git commit, params hash, data
hash) and what it scored (`metrics.*`). `promote` then decides whether it replaces the serving
model: it becomes `champion` only if it beats the current champion on the SAME held-out set by
more than `min_gain`; otherwise it gets the `challenger` alias. The decision and its reason are
tags on the version (`promotion.*`) and the returned `Decision`.

Same held-out set: a version's score is recorded with the content hash of the set it was scored
on (`gate.heldout_hash`). When the champion's recorded hash differs from the candidate's (the
split changed, or the champion predates the gate), its recorded score says nothing about this set:
the project's `evaluate_champion` callback re-scores it on the candidate's set. Without such a
callback the gate refuses, saying why: promoting on scores from two different sets is the
mistake this gate exists to prevent.
"""

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlstack.train.tracking import _mlflow

CHAMPION, CHALLENGER = "champion", "challenger"


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's commit, with `-dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def params_hash(params: Any) -> str:
    """sha256 of the parameters as canonical JSON: key order and formatting do not matter."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset_hash(items: Iterable[tuple[str | Path, str]]) -> str:
    """Content hash of labelled files, `(path, label)` pairs: where the files lie and the order
    they are listed in do not matter, so the same held-out set hashes the same on any machine."""
    digests = sorted(f"{file_digest(path)} {label}" for path, label in items)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def tree_hash(paths: Iterable[str | Path]) -> str:
    """Content hash of files and folders (every file under a folder, by its path relative to
    that folder): unlike `dataset_hash`, for unlabelled inputs such as a query set or a corpus."""
    entries = []
    for root in map(Path, paths):
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for f in files:
            rel = f.relative_to(root).as_posix() if root.is_dir() else ""
            entries.append(f"{root.name}/{rel} {file_digest(f)}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def lineage_tags(
    *, params: Any, data_hash: str, metrics: dict[str, float], commit: str | None = None
) -> dict[str, str]:
    tags = {
        "lineage.git_commit": commit or git_commit(),
        "lineage.params_hash": params_hash(params),
        "lineage.data_hash": data_hash,
    }
    # MLflow refuses `@` in a key: recall@10 is tagged metrics.recall_at_10
    return tags | {f"metrics.{metric_key(k)}": repr(float(v)) for k, v in metrics.items()}


def metric_key(name: str) -> str:
    return name.replace("@", "_at_")


@dataclass
class Decision:
    version: str
    promoted: bool
    alias: str  # the alias the version got: champion or challenger
    reason: str
    metric: str
    score: float
    heldout_hash: str
    min_gain: float
    champion_version: str | None = None
    champion_score: float | None = None
    champion_scored: str | None = None  # "recorded" | "re-evaluated"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _current_champion(client, name: str):
    mlflow = _mlflow()
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def promote(
    name: str,
    version: str,
    *,
    metric: str,
    score: float,
    heldout_hash: str,
    min_gain: float,
    evaluate_champion: Callable[[Any], float] | None = None,
    higher_is_better: bool = True,
) -> Decision:
    """Runs the gate for `version` of `name`, scored `score` on the held-out set `heldout_hash`.

    Promoted when there is no champion, or when `score` beats the champion's score on the same
    set by more than `min_gain` (strictly: a tie within the margin keeps the serving model).
    `evaluate_champion(model_version)` re-scores the champion on this set when its recorded score
    came from another one; without it such a comparison is refused.
    """
    client = _mlflow().MlflowClient()
    version = str(version)  # sqlite stores give ints, REST servers strings
    decision = Decision(version, False, CHALLENGER, "", metric, score, heldout_hash, min_gain)
    champion = _current_champion(client, name)
    if champion is None:
        decision.promoted, decision.reason = True, "no champion"
    elif str(champion.version) == version:
        decision.promoted, decision.reason = True, "already the champion"
    else:
        decision.champion_version = str(champion.version)
        tags = champion.tags or {}
        if tags.get("gate.metric") == metric and tags.get("gate.heldout_hash") == heldout_hash:
            decision.champion_score, decision.champion_scored = (
                float(tags["gate.score"]),
                "recorded",
            )
        elif evaluate_champion is not None:
            decision.champion_score = float(evaluate_champion(champion))
            decision.champion_scored = "re-evaluated"
        else:
            decision.reason = (
                f"refused: champion v{champion.version} was scored on held-out "
                f"{tags.get('gate.heldout_hash', 'unknown')[:12]} ({tags.get('gate.metric')}), "
                f"this version on {heldout_hash[:12]} ({metric}), and no evaluator was given to "
                "re-score the champion on this set"
            )
        if decision.champion_score is not None:
            gain = score - decision.champion_score
            gain = gain if higher_is_better else -gain
            decision.promoted = gain > min_gain
            verdict = "promoted" if decision.promoted else "refused"
            decision.reason = (
                f"{verdict}: {metric} {score:.4f} vs champion v{champion.version} "
                f"{decision.champion_score:.4f} ({decision.champion_scored}) on held-out "
                f"{heldout_hash[:12]}: gain {gain:+.4f}, "
                f"{'more than' if decision.promoted else 'not more than'} min_gain {min_gain}"
            )
    decision.alias = CHAMPION if decision.promoted else CHALLENGER
    _record(client, name, decision)
    return decision


def _record(client, name: str, decision: Decision) -> None:
    tags = {
        "gate.metric": decision.metric,
        "gate.score": repr(decision.score),
        "gate.heldout_hash": decision.heldout_hash,
        "promotion.decision": decision.alias,
        "promotion.reason": decision.reason,
        "promotion.min_gain": repr(decision.min_gain),
        "promotion.champion_version": decision.champion_version or "",
        "promotion.champion_score": ""
        if decision.champion_score is None
        else repr(decision.champion_score),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.version, key, value)
    client.set_registered_model_alias(name, decision.alias, decision.version)


def record_skipped(name: str, version: str, reason: str) -> None:
    """Tags a version that never went through the gate (e.g. not the best of its run)."""
    client = _mlflow().MlflowClient()
    client.set_model_version_tag(name, version, "promotion.decision", "not a candidate")
    client.set_model_version_tag(name, version, "promotion.reason", reason)
