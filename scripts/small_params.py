"""Small pipeline parameters for pull-request checks (.github/workflows/pr-metrics.yml): a few
epochs, fewer queries and latency runs, so the touched projects' stages run in minutes on a CI
runner. The behaviour floors are lowered to report, not gate: a model trained for two epochs is
not the one the full pipeline gates; the comment shows how its figures move.

    python scripts/small_params.py params.yaml     # rewrites the file in place

Keys a checkout's params.yaml lacks (an older base commit) are skipped, never added.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

SMALL: dict[str, Any] = {
    "image_classifier.models.resnet.epochs": 2,
    "image_classifier.models.efficientnet.head_epochs": 1,
    "image_classifier.models.efficientnet.epochs": 1,
    "image_classifier.quantize.calibration_samples": 64,
    "image_classifier.quantize.latency_runs": 10,
    "image_classifier.quantize.prune_sparsities": [0.0, 0.5],
    "image_classifier.behaviour.min_invariance": 0.0,
    "image_classifier.behaviour.min_confidence_drop": -1.0,
    "image_classifier.behaviour.min_class_accuracy": 0.0,
    "semantic_search.data.eval_queries": 100,
    "semantic_search.data.calibration": 64,
    "semantic_search.data.parity": 50,
    "semantic_search.evaluate.latency_queries": 20,
    "semantic_search.behaviour.queries": 50,
    "semantic_search.behaviour.min_invariance": 0.0,
    "semantic_search.behaviour.min_title_top_k": 0.0,
    "semantic_search.behaviour.min_recall_at_k": 0.0,
}


def apply(params: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """Sets every dotted key whose parent exists; returns the keys set."""
    done = []
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            node[key] = value
            done.append(dotted)
    return done


def main(path: Annotated[Path, typer.Argument(help="The params.yaml to shrink.")]) -> None:
    params = yaml.safe_load(path.read_text())
    done = apply(params, SMALL)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    typer.echo(f"{path}: {len(done)} of {len(SMALL)} parameters made small")


if __name__ == "__main__":
    typer.run(main)
