"""Registering what a pipeline stage evaluated, and sending it through the promotion gate: the
flow every project's `register` stage shares (`mlstack.train.promotion` holds the gate itself).

    candidate = Candidate(name="semantic-search-encoder", files={...}, params=p, data_hash=...,
                          heldout_hash=..., metric="mrr@10", score=0.71, metrics={...})
    result = register_and_gate(candidate, experiment="semantic-search",
                               rule={"metric": "mrr@10", "min_gain": 0.005},  # params.yaml's
                               promotion_json=Path("models/semantic_search/promotion.json"))

Each candidate becomes a version of its registered model: its files are logged to a run of its
own (`register`, linked to the evaluation's run by the `evaluate_run_id` tag), so the version
holds exactly what was evaluated and a later gate can re-score it from the registry even after
the pipeline overwrote the local files. The version carries its lineage (`lineage.*`, `metrics.*`)
and, after the gate, `promotion.*`; the promotion JSON holds the same decision beside the model.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.train.promotion import git_commit, lineage_tags, promote, record_skipped


@dataclass
class Candidate:
    name: str  # the registered model
    files: dict[str, Path]  # artifact name under the version's `model/` -> a file or a folder
    params: Any  # what made it: hashed into lineage.params_hash
    data_hash: str  # every input it was built from
    heldout_hash: str  # the set `score` was measured on: the gate compares only on equal sets
    metric: str
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    evaluate_run_id: str | None = None


def register_candidate(candidate: Candidate, *, experiment: str, commit: str | None = None) -> str:
    """Logs the candidate's files to a new run in `experiment` and registers them; -> version."""
    from mlstack.train.tracking import _mlflow, mlflow_run, register_model

    missing = [str(p) for p in candidate.files.values() if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{candidate.name}: nothing to register at {', '.join(missing)}")
    metrics = {candidate.metric: candidate.score, **candidate.metrics}
    tags = candidate.tags | lineage_tags(
        params=candidate.params, data_hash=candidate.data_hash, metrics=metrics, commit=commit
    )
    tags["gate.heldout_hash_candidate"] = candidate.heldout_hash
    if candidate.evaluate_run_id:
        tags["evaluate_run_id"] = candidate.evaluate_run_id
    mlflow = _mlflow()
    with mlflow_run(experiment, run_name="register", tags=tags) as run:
        for arcname, path in candidate.files.items():
            path = Path(path)
            if path.is_dir():
                # "" puts the folder's files at the version's top (a model folder as it loads)
                target = f"model/{arcname}" if arcname else "model"
                mlflow.log_artifacts(str(path), artifact_path=target)
            else:
                _log_file(mlflow, path, arcname)
    return register_model(run.info.run_id, "model", candidate.name, tags=tags)


def _log_file(mlflow, path: Path, arcname: str) -> None:
    """`arcname` may rename the file: the registry's layout need not be the pipeline's."""
    parent = "/".join(["model", *Path(arcname).parts[:-1]])
    if path.name == Path(arcname).name:
        mlflow.log_artifact(str(path), artifact_path=parent)
        return
    with tempfile.TemporaryDirectory() as tmp:
        renamed = Path(tmp) / Path(arcname).name
        shutil.copy2(path, renamed)
        mlflow.log_artifact(str(renamed), artifact_path=parent)


def gate(
    candidate: Candidate,
    version: str,
    *,
    min_gain: float,
    higher_is_better: bool = True,
    evaluate_champion: Callable[[Any], float] | None = None,
) -> dict[str, Any]:
    return promote(
        candidate.name,
        version,
        metric=candidate.metric,
        score=candidate.score,
        heldout_hash=candidate.heldout_hash,
        min_gain=min_gain,
        evaluate_champion=evaluate_champion,
        higher_is_better=higher_is_better,
    ).to_dict()


def register_and_gate(
    candidates: Candidate | list[Candidate],
    *,
    experiment: str,
    rule: Mapping[str, Any],
    promotion_json: Path,
    evaluate_champion: Callable[[Any], float] | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """Registers every candidate (one registered model); the best by its score goes through the
    gate, the others are tagged as not candidates. Writes and returns the promotion record.
    `rule`: a project's `promotion` block in params.yaml: `min_gain`, and `higher_is_better`
    (default true) for a metric such as a loss."""
    min_gain, higher_is_better = float(rule["min_gain"]), bool(rule.get("higher_is_better", True))
    candidates = candidates if isinstance(candidates, list) else [candidates]
    if len({c.name for c in candidates}) != 1:
        raise ValueError("candidates of one gate share one registered model")
    commit = commit or git_commit(Path(__file__).resolve().parent)
    versions = [register_candidate(c, experiment=experiment, commit=commit) for c in candidates]
    sign = 1 if higher_is_better else -1
    # the first listed wins a tie: the caller lists what it prefers to serve first
    best = max(range(len(candidates)), key=lambda i: (sign * candidates[i].score, -i))
    for i, c in enumerate(candidates):
        if i != best:
            record_skipped(
                c.name,
                versions[i],
                f"not the best of its run on {c.metric} ({c.score:.4f} vs "
                f"{candidates[best].score:.4f}, version {versions[best]})",
            )
    chosen = candidates[best]
    decision = gate(
        chosen,
        versions[best],
        min_gain=min_gain,
        higher_is_better=higher_is_better,
        evaluate_champion=evaluate_champion,
    )
    result = {
        "registered_model": chosen.name,
        "versions": {_label(c, i): versions[i] for i, c in enumerate(candidates)},
        "candidate": _label(chosen, best),
        "scores": {_label(c, i): c.score for i, c in enumerate(candidates)},
        "metric": chosen.metric,
        "higher_is_better": higher_is_better,
        "heldout_hash": chosen.heldout_hash,
        "data_hash": chosen.data_hash,
        "git_commit": commit,
        "decision": decision,
    }
    write_json(promotion_json, result)
    return result


def _label(candidate: Candidate, index: int) -> str:
    return candidate.tags.get("candidate", str(index))


def install_champion(files: dict[str, Path], target: Path) -> Path:
    """Copies what a champion serves into `target` (name there -> a file or a folder) and swaps
    whole folders, so a service reading `target` sees the old champion or the new one, never a
    mix (for an instant, neither: services read it as they start). A missing file fails before
    anything moves; a swap cut short by a kill is finished or undone by the next call."""
    target = Path(target)
    staging, old = target.with_name(f"{target.name}.new"), target.with_name(f"{target.name}.old")
    if not target.exists() and old.exists():  # killed between the two renames: put it back
        old.rename(target)
    if missing := [str(p) for p in files.values() if not Path(p).exists()]:
        raise FileNotFoundError(f"cannot install the champion: {', '.join(missing)} missing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, source in files.items():
        source, dest = Path(source), staging / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copy2(source, dest)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return target


MARKER = "registered.json"  # in a champion folder: the registered model and version it holds


def installed_version(folder: Path) -> dict[str, str] | None:
    """{"registered_model", "version"} of the champion `folder` holds; None: not a champion."""
    marker = Path(folder) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else None


def sync_champion(name: str, target: Path) -> str | None:
    """Makes `target` hold the files of the registry's `champion` of `name`, downloaded from the
    registry: after a promotion, and wherever the folder is missing or holds another version (a
    fresh checkout, a copy cut short). The registry decides what is served; the folder follows
    it. -> the version installed, or None when the folder was already right or there is no
    champion."""
    from mlstack.train.promotion import _current_champion
    from mlstack.train.tracking import _mlflow

    champion = _current_champion(_mlflow().MlflowClient(), name)
    if champion is None:  # nothing promoted yet: nothing to serve
        return None
    marker = Path(target) / MARKER
    held = json.loads(marker.read_text()) if marker.exists() else {}
    if held == {"registered_model": name, "version": str(champion.version)}:
        return None
    files = download(champion)
    with tempfile.TemporaryDirectory() as tmp:
        note = Path(tmp) / MARKER
        note.write_text(json.dumps({"registered_model": name, "version": str(champion.version)}))
        install_champion({p.name: p for p in files.iterdir()} | {MARKER: note}, target)
    return str(champion.version)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old record or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def download(model_version: Any) -> Path:
    """The files of a registered version (e.g. the champion, to re-score it)."""
    from mlstack.train.tracking import _mlflow

    return Path(_mlflow().artifacts.download_artifacts(artifact_uri=model_version.source))
