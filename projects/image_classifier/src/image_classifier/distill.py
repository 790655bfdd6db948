"""Distill stage: the fine-tuned EfficientNet-Lite0 (teacher) teaches a small CNN (student).

Loss (Hinton et al., 2015): `alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T))
+ (1 - alpha) * CE(student, labels)`. The T^2 keeps the soft term's gradients the same size
at every temperature, so alpha weighs the two terms the same way whatever T is.

Teacher logits. With `augment: null` they are computed once, over the training images under
inference_mode, and looked up by index: at 48 px the teacher's forward pass costs several
student training steps, and fresh random views would repeat it on every batch of every epoch of
every (alpha, T) tried. With an `augment` block they are computed per batch on the very view the
student sees (a cache could never hit: each view is new).

The student alone is the same model, images, recipe, epochs, seed and initial weights, with
alpha = 0 (no teacher). (alpha, T) are picked on validation; the report gives test figures.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from image_classifier.dataset import ImageDataset
from image_classifier.export import export_model, load_trained
from image_classifier.models import build_model
from image_classifier.splits import read_split
from image_classifier.train import predict_logits
from image_classifier.transforms import Augment, Preprocess
from mlstack.train import TrainConfig, fit, seed_everything
from mlstack.train.device import run_options
from mlstack.train.loop import save_checkpoint


@dataclass
class DistillConfig:
    teacher: str = "efficientnet"
    student: dict[str, Any] = field(default_factory=lambda: {"widths": [8, 16, 32], "dropout": 0.1})
    alpha: list[float] = field(default_factory=lambda: [0.5, 0.9])  # grid, picked on validation
    temperature: list[float] = field(default_factory=lambda: [2.0, 4.0])
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.003
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    patience: int = 5
    seed: int = 42
    augment: dict[str, Any] | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "DistillConfig":
        unknown = set(params) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown distill parameters: {sorted(unknown)}")
        grid = {
            k: [float(v) for v in np.atleast_1d(params[k])]
            for k in ("alpha", "temperature")
            if k in params
        }
        return cls(**{**params, **grid})


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy on the labels."""
    ce = F.cross_entropy(student_logits, targets)
    if alpha == 0:
        return ce
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * t * t * kl + (1 - alpha) * ce


class Teacher:
    """The frozen teacher's logits for a training batch: looked up when precomputed (no
    augmentation), else computed on the batch under inference_mode."""

    def __init__(self, model: torch.nn.Module, train_x: np.ndarray | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cached = None if train_x is None else torch.from_numpy(predict_logits(model, train_x))

    def logits(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """On the batch's device: fit() moves batches to its device (`training.device`)."""
        if self.cached is not None:
            return self.cached[index.cpu()].to(x.device)
        self.model.to(x.device).eval()
        with torch.inference_mode():
            out = self.model(x)
        return out.clone()  # a normal tensor: inference tensors cannot be saved for backward


class Indexed(Dataset):
    """Adds each sample's index to the batch, for the precomputed teacher logits."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return (*self.dataset[i], i)


def make_loss(teacher: Teacher | None, alpha: float, temperature: float):
    def loss_fn(model: torch.nn.Module, batch) -> torch.Tensor:
        x, y, index = batch
        logits = model(x)
        if teacher is None or alpha == 0:
            return F.cross_entropy(logits, y)
        return kd_loss(logits, teacher.logits(x, index), y, alpha=alpha, temperature=temperature)

    return loss_fn


@dataclass
class Splits:
    labels: list[str]
    preprocess: Preprocess
    train: ImageDataset
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    @classmethod
    def load(cls, data_dir: Path, card: dict, cfg: DistillConfig) -> "Splits":
        """The teacher's preprocessing for both models: they must see the same pixels."""
        labels, preprocess = card["labels"], Preprocess.from_dict(card["preprocess"])
        aug = cfg.augment
        augment = aug and Augment.from_params(aug)
        split = {s: read_split(data_dir, s) for s in ("train", "val", "test")}
        train = ImageDataset(split["train"], labels, preprocess, augment or None, cfg.seed)
        val, test = (ImageDataset(split[s], labels, preprocess).arrays() for s in ("val", "test"))
        return cls(labels, preprocess, train, val, test)


def train_student(
    name: str,
    cfg: DistillConfig,
    splits: Splits,
    teacher: Teacher | None,
    alpha: float,
    temperature: float,
    teacher_val: np.ndarray,
    *,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """One student; returns it (best validation epoch restored) and its card."""
    seed_everything(cfg.seed)  # the same initial weights for every student
    model = build_model(name, len(splits.labels), cfg.student, pretrained=False)
    splits.train.rng = np.random.default_rng(cfg.seed)  # and the same augmented views
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(Indexed(splits.train), cfg.batch_size, shuffle=True, generator=generator)
    val_x, val_y = splits.val
    agree_with = teacher_val.argmax(1)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        logits = predict_logits(m, val_x)
        pred = logits.argmax(1)
        loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val_y)).item()
        return {
            "val_loss": loss,
            "val_accuracy": float((pred == val_y).mean()),
            "val_agreement": float((pred == agree_with).mean()),
        }

    config = TrainConfig(
        epochs=cfg.epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        patience=cfg.patience,
        seed=cfg.seed,
        progress=progress,
        **run_options(),  # device/precision/compile: params.yaml `training`, as ic_train
    )
    loss_fn = make_loss(teacher, alpha, temperature)
    result = fit(model, loader, loss_fn=loss_fn, evaluate=evaluate, config=config)
    model.cpu()  # fit() may have left it on a GPU: saved, exported and measured on the CPU
    best = result.history[result.best_epoch - 1]
    card = {
        "name": name,
        "labels": splits.labels,
        "preprocess": splits.preprocess.to_dict(),
        "params": cfg.student,
        "teacher": cfg.teacher if alpha > 0 else None,
        "alpha": alpha,
        "temperature": temperature,
        "parameters": sum(p.numel() for p in model.parameters()),
        "val_accuracy": result.best_score,
        "val_loss": best["val_loss"],
        "val_agreement": best["val_agreement"],
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 1),
        "history": result.history,
    }
    return model, card


def _save(model: torch.nn.Module, card: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out_dir / "model.safetensors")
    history = card.pop("history")
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    (out_dir / "card.json").write_text(json.dumps(card, indent=2))


def distill(
    cfg: DistillConfig, data_dir: Path, model_root: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Trains the student alone and one distilled student per (alpha, T); keeps the one best on
    validation (accuracy, then loss); writes both to `model_root/student{,_alone}` with ONNX."""
    teacher_model, teacher_card = load_trained(model_root / cfg.teacher)
    splits = Splits.load(data_dir, teacher_card, cfg)
    train_x = None if cfg.augment else splits.train.arrays()[0]
    teacher = Teacher(teacher_model, train_x)
    teacher_val = predict_logits(teacher_model, splits.val[0])

    grid = []
    alone, alone_card = train_student(
        "student_alone", cfg, splits, None, 0.0, 1.0, teacher_val, progress=progress
    )
    best = None
    for alpha in cfg.alpha:
        for temperature in cfg.temperature:
            model, card = train_student(
                "student", cfg, splits, teacher, alpha, temperature, teacher_val, progress=progress
            )
            keys = ("alpha", "temperature", "val_accuracy", "val_loss", "val_agreement")
            grid.append({k: card[k] for k in keys} | {"best_epoch": card["best_epoch"]})
            if best is None or (card["val_accuracy"], -card["val_loss"]) > (
                best[1]["val_accuracy"],
                -best[1]["val_loss"],
            ):
                best = (model, card)
    assert best is not None, "the distill grid is empty: give at least one alpha and temperature"
    exports = {}
    for name, (model, card) in {"student_alone": (alone, alone_card), "student": best}.items():
        _save(model, card, model_root / name)
        exports[name] = export_model(model_root / name, data_dir, version="1")["parity"]
    return {
        "grid": grid,
        "chosen": {k: best[1][k] for k in ("alpha", "temperature")},
        "export": exports,
    }
