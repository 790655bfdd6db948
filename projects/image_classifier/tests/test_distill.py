"""Knowledge distillation: the KD loss, the frozen teacher, a tiny run on digits, the CLI."""

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from image_classifier.cli import app
from image_classifier.distill import DistillConfig, Teacher, distill, kd_loss, make_loss
from image_classifier.distill_report import speed_and_quality
from image_classifier.models import CompactResNet, ResNetConfig, StudentCNN, StudentConfig
from image_classifier.train import train_model

from .conftest import TINY


def _logits(seed: int, n: int = 16, classes: int = 10) -> torch.Tensor:
    return torch.randn(n, classes, generator=torch.Generator().manual_seed(seed)) * 3


def test_kd_loss_is_cross_entropy_when_alpha_is_zero():
    s, t, y = _logits(0), _logits(1), torch.randint(0, 10, (16,))
    assert torch.allclose(kd_loss(s, t, y, alpha=0.0, temperature=4.0), F.cross_entropy(s, y))


def test_kd_loss_temperature_scaling():
    s, t, y = _logits(0), _logits(1), torch.randint(0, 10, (16,))
    for temperature in (1.0, 3.0):
        p_t = F.softmax(t / temperature, 1)
        kl = (p_t * (p_t.log() - F.log_softmax(s / temperature, 1))).sum(1).mean()
        got = kd_loss(s, t, y, alpha=1.0, temperature=temperature)
        assert torch.allclose(got, temperature**2 * kl, atol=1e-5)
    # alpha blends the two terms linearly
    half = kd_loss(s, t, y, alpha=0.5, temperature=2.0)
    ends = kd_loss(s, t, y, alpha=1.0, temperature=2.0) + F.cross_entropy(s, y)
    assert torch.allclose(half, ends / 2, atol=1e-5)

    # The T^2 factor keeps the soft term's gradient the same size at high temperatures
    # (it tends to (z_s - z_t) / classes); without it the gradient would fall as 1/T^2.
    def grad_norm(temperature: float) -> float:
        z = s.clone().requires_grad_(True)
        kd_loss(z, t, y, alpha=1.0, temperature=temperature).backward()
        return z.grad.norm().item()

    assert grad_norm(40.0) == pytest.approx(grad_norm(20.0), rel=0.05)
    assert grad_norm(1.0) != pytest.approx(grad_norm(20.0), rel=0.05)


def test_gradient_flows_only_to_the_student():
    torch.manual_seed(0)
    teacher_model = CompactResNet(ResNetConfig(num_classes=10, **TINY))
    student = StudentCNN(StudentConfig(widths=[4, 8]))
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 10, (6,))
    for teacher in (Teacher(teacher_model), Teacher(teacher_model, x.numpy())):
        student.zero_grad()
        loss = make_loss(teacher, 0.7, 4.0)(student, (x, y, torch.arange(6)))
        loss.backward()
        assert all(p.grad is None for p in teacher_model.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    # precomputed logits (no augmentation) are the ones computed on the batch
    online = Teacher(teacher_model).logits(x, torch.arange(6))
    index = torch.tensor([4, 1])
    assert torch.allclose(Teacher(teacher_model, x.numpy()).logits(x[index], index), online[index])
    # logits follow the batch to fit()'s device (`training.device`); "meta" stands in for a GPU
    on_meta = Teacher(teacher_model, x.numpy()).logits(x.to("meta"), index)
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 10)


@pytest.fixture(scope="module")
def tiny_teacher_root(digits_dir, tmp_path_factory):
    """A tiny ResNet trained for a few epochs on digits at their own 8 px, exported: a real
    teacher, cheap enough for a loaded CI machine."""
    from image_classifier.export import export_model

    root = tmp_path_factory.mktemp("models")
    params = {
        **TINY,
        "image_size": 8,
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.01,
        "weight_decay": 0.0,
        "warmup_ratio": 0.0,
        "label_smoothing": 0.0,
        "patience": 4,
        "seed": 0,
        "pretrained": False,
        "augment": {"scale": [0.9, 1.0], "rotation": 0, "hflip": False},
    }
    train_model("resnet", params, digits_dir, root / "resnet", log_mlflow=False, progress=False)
    export_model(root / "resnet", digits_dir, version="1")
    return root


def test_tiny_distillation_on_digits(digits_dir, tiny_teacher_root):
    cfg = DistillConfig(
        teacher="resnet",
        student={"widths": [8, 16], "dropout": 0.0},
        alpha=[0.7],
        temperature=[2.0, 4.0],
        epochs=2,
        lr=0.02,
        patience=2,
        seed=0,
    )
    result = distill(cfg, digits_dir, tiny_teacher_root, progress=False)
    assert [(g["alpha"], g["temperature"]) for g in result["grid"]] == [(0.7, 2.0), (0.7, 4.0)]
    chosen = max(result["grid"], key=lambda g: (g["val_accuracy"], -g["val_loss"]))
    assert result["chosen"] == {"alpha": 0.7, "temperature": chosen["temperature"]}
    for name in ("student", "student_alone"):
        card = json.loads((tiny_teacher_root / name / "card.json").read_text())
        assert card["val_accuracy"] > 0.3  # chance is 0.1
        assert result["export"][name]["passed"]
    assert json.loads((tiny_teacher_root / "student_alone" / "card.json").read_text())["alpha"] == 0

    report = speed_and_quality(
        cfg,
        digits_dir,
        tiny_teacher_root,
        threads=1,
        batch_size=32,
        latency_runs=5,
        min_seconds=0.05,
    )
    v = report["variants"]
    assert report["threads"] == 1 and next(iter(v)) == "teacher_torch_fp32"
    assert {"teacher_onnx_fp32", "teacher_onnx_fp16", "student_onnx_fp32"} <= set(v)
    assert v["teacher_onnx_fp32"]["agreement_with_teacher"] == 1.0
    assert v["student_onnx_fp32"]["accuracy"] > 0.3
    assert v["student_onnx_fp32"]["size_bytes"] < v["teacher_onnx_fp32"]["size_bytes"] * 2


def test_distill_cli_help():
    result = CliRunner().invoke(app, ["distill", "--help"])
    assert result.exit_code == 0
    assert "--teacher" in result.output and "alpha" in result.output
