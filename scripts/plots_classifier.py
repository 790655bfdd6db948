"""scripts/plots.py's figures of the digits classifier: per-class recall and precision, and
calibration, from the evaluate stage's files under reports/image_classifier/."""

import csv
from pathlib import Path

from plots_common import MissingInputError, need, pyplot, read_json, save


def _classifiers(reports: Path) -> list[str]:
    names = sorted(p.parent.name for p in (reports / "image_classifier").glob("*/metrics.json"))
    if not names:
        raise MissingInputError(f"no {reports}/image_classifier/*/metrics.json")
    return names


def classifier_per_class(reports: Path, out: Path) -> None:
    """Per-class recall and precision of each trained model on the test split. The confusion
    matrix itself is a PNG the evaluate stage writes but git ignores; per_class.json is its
    committed summary (its diagonal over the row and column sums)."""
    plt = pyplot()
    names = _classifiers(reports)
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.4), sharey=True)
    for ax, metric in zip(axes, ("recall", "precision"), strict=True):
        rows = []
        for name in names:
            per_class = read_json(reports / "image_classifier" / name / "per_class.json")
            classes = sorted(per_class, key=int)
            rows.append([per_class[c][metric] for c in classes])
        image = ax.imshow(rows, vmin=0.8, vmax=1.0, cmap="viridis", aspect="auto")
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}"[1:] if value < 1 else "1",
                    ha="center",
                    va="center",
                    color="white" if value < 0.9 else "black",
                    fontsize=7,
                )
        ax.set(
            xticks=range(len(classes)),
            xticklabels=classes,
            yticks=range(len(names)),
            yticklabels=names,
            xlabel="digit",
            title=f"test {metric} per class",
        )
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8)
    save(fig, out)


def classifier_reliability(reports: Path, out: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, the diagonal being perfect
    calibration. From the evaluate stage's reliability.csv (a DVC plot, ignored by git)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name in _classifiers(reports):
        path = need(reports / "image_classifier" / name / "reliability.csv")
        ece = read_json(reports / "image_classifier" / name / "metrics.json")["ece"]
        with path.open() as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set(
        xlabel="confidence (bin mean)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.05),
        title="Digits classifier calibration (test)",
    )
    ax.legend(loc="lower right", fontsize=7)
    save(fig, out)
