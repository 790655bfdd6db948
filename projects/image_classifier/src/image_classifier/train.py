"""Train stage: one model family on the prepared splits, tracked in MLflow.

Writes `models/image_classifier/<name>/`: `model.safetensors` (best epoch), `card.json` (labels,
preprocessing, validation metrics, MLflow run id) and `history.json`.
"""

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from image_classifier.dataset import ImageDataset, channel_stats, loader
from image_classifier.models import build_model, head_parameters, preprocess_for
from image_classifier.splits import read_split
from image_classifier.transforms import Augment
from mlstack.train import TrainConfig, fit, mlflow_run
from mlstack.train.device import run_options

EXPERIMENT = "image_classifier"


def predict_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    # fit() may have left the model on a GPU (device `auto`): inputs follow it, logits come back
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        return torch.cat(
            [
                model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu()
                for i in range(0, len(x), batch_size)
            ]
        ).numpy()


def build_datasets(name: str, params: dict, data_dir: Path, labels: list[str]):
    mean, std = channel_stats(data_dir, params["image_size"]) if name == "resnet" else (None, None)
    preprocess = preprocess_for(name, params["image_size"], mean, std)
    augment = Augment.from_params(params["augment"])
    train = ImageDataset(read_split(data_dir, "train"), labels, preprocess, augment, params["seed"])
    val = ImageDataset(read_split(data_dir, "val"), labels, preprocess)
    return train, val, preprocess


def train_model(
    name: str,
    params: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    *,
    log_mlflow: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    labels = json.loads((data_dir / "labels.json").read_text())
    train_set, val_set, preprocess = build_datasets(name, params, data_dir, labels)
    train_loader = loader(train_set, params["batch_size"], shuffle=True, seed=params["seed"])
    val_x, val_y = val_set.arrays()
    model = build_model(name, len(labels), params, pretrained=params.get("pretrained", True))
    smoothing = params["label_smoothing"]

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x), y, label_smoothing=smoothing)

    def evaluate(m) -> dict[str, float]:
        logits = predict_logits(m, val_x)
        loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val_y)).item()
        return {"val_loss": loss, "val_accuracy": float((logits.argmax(1) == val_y).mean())}

    def config(epochs: int, lr: float) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            lr=lr,
            weight_decay=params["weight_decay"],
            warmup_ratio=params["warmup_ratio"],
            patience=params["patience"],
            seed=params["seed"],
            progress=progress,
            **run_options(params),  # device/precision/compile: params.yaml `training`
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    phases = []
    if params.get("head_epochs"):  # transfer learning: train the new head on a frozen backbone
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head_parameters(model):
            p.requires_grad_(True)
        phases.append(("head", config(params["head_epochs"], params["head_lr"])))
    phases.append(("full", config(params["epochs"], params["lr"])))

    tracked = mlflow_run(
        EXPERIMENT, run_name=name, params={"model": name, **params}, tags={"stage": "train"}
    )
    with tracked if log_mlflow else contextlib.nullcontext() as run:
        history, step, result = [], 0, None
        for phase, cfg in phases:
            if phase == "full":
                for p in model.parameters():
                    p.requires_grad_(True)

            def on_epoch_end(epoch: int, metrics: dict, phase=phase) -> None:
                nonlocal step
                step += 1
                history.append({"phase": phase, "step": step, **metrics})
                if log_mlflow:
                    import mlflow

                    mlflow.log_metrics(metrics, step=step)

            result = fit(
                model,
                train_loader,
                loss_fn=loss_fn,
                evaluate=evaluate,
                config=cfg,
                checkpoint_path=out_dir / "model.safetensors",
                on_epoch_end=on_epoch_end,
            )
        card = {
            "name": name,
            "labels": labels,
            "preprocess": preprocess.to_dict(),
            "params": params,
            "val_accuracy": result.best_score,
            "best_epoch": result.best_epoch,
            "train_seconds": round(result.seconds, 1),
            "mlflow_run_id": run.info.run_id if run else None,
        }
        (out_dir / "card.json").write_text(json.dumps(card, indent=2))
        (out_dir / "history.json").write_text(json.dumps(history, indent=2))
        if log_mlflow:
            import mlflow

            mlflow.log_metric("best_val_accuracy", result.best_score)
            mlflow.log_artifacts(str(out_dir), artifact_path="model")
    return card
