"""Evaluate stage: test-set accuracy, macro-F1, per-class precision/recall, confusion matrix,
calibration (ECE and a reliability plot). Written as DVC metrics and plots, logged to MLflow."""

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_calibration_error(
    probs: np.ndarray, y: np.ndarray, bins: int = 15
) -> tuple[float, list]:
    """ECE over equal-width confidence bins; also returns the bins for the reliability plot."""
    confidence, correct = probs.max(1), probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in itertools.pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            gap = abs(correct[mask].mean() - confidence[mask].mean())
            ece += mask.mean() * gap
            table.append(
                {
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return float(ece), table


def classification_metrics(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = probs.argmax(1)
    precision, recall, _, support = precision_recall_fscore_support(
        y, pred, labels=range(len(labels)), zero_division=0
    )
    ece, _ = expected_calibration_error(probs, y)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "ece": ece,
        "samples": len(y),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "support": int(s)}
            for label, p, r, s in zip(labels, precision, recall, support, strict=True)
        },
    }


def save_plots(probs: np.ndarray, y: np.ndarray, labels: list[str], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 6))
    ConfusionMatrixDisplay.from_predictions(
        y, probs.argmax(1), display_labels=labels, ax=ax, colorbar=False
    )
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    ece, table = expected_calibration_error(probs, y)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], "o-", label="model")
    ax.set(
        xlabel="confidence",
        ylabel="accuracy",
        title=f"Reliability (ECE {ece:.4f})",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=100)
    plt.close(fig)
    with (out_dir / "reliability.csv").open("w") as f:  # DVC plots data
        f.write("confidence,accuracy,count\n")
        f.writelines(f"{b['confidence']:.4f},{b['accuracy']:.4f},{b['count']}\n" for b in table)
    return [out_dir / "confusion_matrix.png", out_dir / "reliability.png"]


def evaluate_model(model_dir: Path, data_dir: Path, report_dir: Path) -> dict[str, Any]:
    from image_classifier.dataset import ImageDataset
    from image_classifier.models import build_model
    from image_classifier.splits import read_split
    from image_classifier.train import predict_logits
    from image_classifier.transforms import Preprocess
    from mlstack.train.loop import load_checkpoint

    card = json.loads((model_dir / "card.json").read_text())
    labels = card["labels"]
    model = build_model(card["name"], len(labels), card["params"], pretrained=False)
    load_checkpoint(model, model_dir / "model.safetensors")
    test = ImageDataset(
        read_split(data_dir, "test"), labels, Preprocess.from_dict(card["preprocess"])
    )
    x, y = test.arrays()
    probs = softmax(predict_logits(model, x))
    metrics = classification_metrics(probs, y, labels)
    plots = save_plots(probs, y, labels, report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = {k: metrics[k] for k in ("accuracy", "macro_f1", "ece", "samples")}
    summary["val_accuracy"] = card["val_accuracy"]
    (report_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    (report_dir / "per_class.json").write_text(json.dumps(metrics["per_class"], indent=2))
    if card.get("mlflow_run_id"):
        from mlstack.train.tracking import _mlflow

        mlflow = _mlflow()
        with mlflow.start_run(run_id=card["mlflow_run_id"]):
            mlflow.log_metrics({f"test_{k}": v for k, v in summary.items() if k != "samples"})
            for plot in plots:
                mlflow.log_artifact(str(plot), artifact_path="evaluation")
    return summary
