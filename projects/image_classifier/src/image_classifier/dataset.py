"""A torch Dataset over a split manifest; images are decoded once and kept in memory."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from image_classifier.splits import Sample, read_split
from image_classifier.transforms import Augment, Preprocess


class ImageDataset(Dataset):
    def __init__(
        self,
        samples: list[Sample],
        labels: list[str],
        preprocess: Preprocess,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.index = {label: i for i, label in enumerate(labels)}
        self.targets = [self.index[s.label] for s in samples]
        # resize once up front: decoding and resizing every epoch would dominate training time
        self.images = [preprocess.resize(Image.open(s.path)) for s in samples]
        self.preprocess, self.augment = preprocess, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        if self.augment is not None:
            image = self.augment(image, self.rng)
        return torch.from_numpy(self.preprocess(image)), self.targets[i]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All (unaugmented) inputs and targets as arrays: for evaluation and calibration."""
        x = np.stack([self.preprocess(image) for image in self.images])
        return x, np.asarray(self.targets)


def channel_stats(data_dir: Path, image_size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the training split, for models trained from scratch."""
    x = np.stack(
        [
            np.asarray(Preprocess(image_size).resize(Image.open(s.path)), np.float32) / 255
            for s in read_split(data_dir, "train")
        ]
    )
    return x.mean(axis=(0, 1, 2)).round(4).tolist(), (x.std(axis=(0, 1, 2)) + 1e-6).round(
        4
    ).tolist()


def loader(dataset: ImageDataset, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
