"""Image transforms with PIL and NumPy only (no torchvision), shared by training and serving.

`Preprocess` turns a PIL image into the normalised CHW float32 array a model expects;
`Augment` is the training-time randomness in front of it. The service imports this module without
torch.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps


@dataclass(frozen=True)
class Preprocess:
    image_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_ratio: float = 1.0  # < 1: resize the short side to size/ratio, then centre-crop

    def resize(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        size = self.image_size
        if self.crop_ratio >= 1.0:
            return image.resize((size, size), Image.Resampling.BILINEAR)
        short = round(size / self.crop_ratio)
        return ImageOps.fit(
            image.resize(_short_side(image.size, short), Image.Resampling.BILINEAR), (size, size)
        )

    def normalize(self, image: Image.Image) -> np.ndarray:
        x = np.asarray(image, dtype=np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.normalize(self.resize(image))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        return cls(
            int(d["image_size"]), tuple(d["mean"]), tuple(d["std"]), float(d.get("crop_ratio", 1.0))
        )


def _short_side(size: tuple[int, int], short: int) -> tuple[int, int]:
    w, h = size
    return (
        (short, max(1, round(h * short / w))) if w <= h else (max(1, round(w * short / h)), short)
    )


def shift(image: Image.Image, dx: int, dy: int) -> Image.Image:
    """`image` moved by (dx, dy) pixels, the uncovered edge filled with the background's colour
    (the darkest corner pixel), not wrapped around."""
    background = min(image.getpixel((x, y)) for x in (0, image.width - 1) for y in (0, 1))
    return image.rotate(0, translate=(dx, dy), fillcolor=background)


@dataclass(frozen=True)
class Augment:
    """Random resized crop, small rotation, shift, optional horizontal flip (off for digits and
    text). The crop zooms as it moves, so alone it leaves a model unsure of a digit written a
    pixel higher (ic_behaviour's shift checks): `translate` moves the whole image by up to that
    share of its width and height."""

    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (0.9, 1.1)
    rotation: float = 10.0
    translate: float = 0.0
    hflip: bool = False

    @classmethod
    def from_params(cls, aug: dict[str, Any]) -> "Augment":
        """params.yaml's `augment` block."""
        return cls(
            tuple(aug["scale"]),
            rotation=aug["rotation"],
            translate=aug.get("translate", 0.0),
            hflip=aug["hflip"],
        )

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = image.size
        area = w * h * rng.uniform(*self.scale)
        aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1])))
        cw = int(round(min(w, np.sqrt(area * aspect))))
        ch = int(round(min(h, np.sqrt(area / aspect))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        image = image.crop((left, top, left + cw, top + ch))
        if self.rotation:
            angle = float(rng.uniform(-self.rotation, self.rotation))
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR)
        if self.translate:
            dx, dy = (round(self.translate * n) for n in image.size)
            image = shift(image, int(rng.integers(-dx, dx + 1)), int(rng.integers(-dy, dy + 1)))
        if self.hflip and rng.random() < 0.5:
            image = ImageOps.mirror(image)
        return image


def image_stats(image: Image.Image) -> dict[str, float]:
    """Cheap per-image features for the inference log and drift reports."""
    gray = np.asarray(image.convert("L").resize((64, 64)), dtype=np.float32) / 255.0
    return {
        "width": float(image.size[0]),
        "height": float(image.size[1]),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
    }
