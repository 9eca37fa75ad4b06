"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from torchvision, one shared DataModule class.

Files live in torchvision's own layout under `data_dir` (`MNIST/raw/`, `FashionMNIST/raw/`,
`cifar-10-batches-py/`, `cifar-100-python/`); `prepare_data` downloads them when missing. Fashion-MNIST is also
found where Debian's `dataset-fashion-mnist` package puts it (`/usr/share/datasets/fashion-mnist/*-ubyte.gz`):
when `data_dir` lacks the files, the system copy is checked (md5 of the uncompressed originals) and
decompressed into `data_dir/FashionMNIST/raw/`, so no download is needed (``system_source.py``).
`prepare_data` first checks the (MNIST, Fashion-MNIST) IDX files already there: a truncated or damaged one is a
one-line `DataError` naming it (torchvision would only say "shape '[60000, 28, 28]' is invalid"); it does its work
once per object (Lightning calls it in `fit` and again in `test`, the CLI once before the Trainer).
Batches: `x` float32 `[B, C, H, W]` in [0, 1] (unless `normalize`), `y` int64 `[B]`.
"""

from __future__ import annotations

import copy
import math
import os
import struct

import numpy as np
import torch
from torch.utils.data import Subset
from torchvision import datasets
from torchvision.datasets.vision import StandardTransform
from torchvision.transforms import v2

from ttfs_lab.data.base import TTFSDataModule, split_indices, subset_indices
from ttfs_lab.data.system_source import SystemCopy
from ttfs_lab.errors import ConfigError, DataError, first_line

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_ITEM_BYTES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}  # IDX type code -> bytes per value


def idx_problem(path: str) -> str | None:
    """What is wrong with the IDX file at `path` (magic number, dimensions, then exactly their values), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in IDX_ITEM_BYTES or not 1 <= magic[3] <= 3:
                return f"is not an IDX file ({size} bytes, no IDX magic number)"
            dims = f.read(4 * magic[3])
    except OSError as exc:
        return f"is unreadable ({exc.strerror})"
    if len(dims) < 4 * magic[3]:
        return f"is truncated ({size} bytes, shorter than its IDX header)"
    shape = struct.unpack(f">{magic[3]}I", dims)
    expected = 4 + len(dims) + math.prod(shape) * IDX_ITEM_BYTES[magic[2]]
    if size != expected:
        return (f"is {'truncated' if size < expected else 'too long'} ({size} bytes; its IDX header declares "
                f"{'x'.join(map(str, shape))} values, {expected} bytes)")
    return None


class TorchvisionDataModule(TTFSDataModule):
    """A torchvision image set; subclasses only name the dataset and its constants.

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        augment: training-set augmentation. None = the dataset's standard: RandomCrop(32, padding=4) +
            RandomHorizontalFlip for CIFAR, none for MNIST / Fashion-MNIST. True on MNIST / Fashion-MNIST:
            random shifts of up to 2 pixels. The validation split (taken from the training files) is never
            augmented.
        normalize: subtract the dataset mean and divide by its std per channel (off: x stays in [0, 1]).
        train_subset: train on this many samples of the training split only (a seeded, class-stratified draw);
            None = all. Validation and test sets are unchanged (the reproduction budget, docs/results.md).
    """

    dataset_cls: type = datasets.MNIST
    folder: str = "MNIST/raw"  # where the files lie under data_dir, for error messages
    files_hint: str = "the four uncompressed IDX files (train-images-idx3-ubyte, ...)"
    cifar_like: bool = False
    mean: tuple[float, ...] = (0.1307,)
    std: tuple[float, ...] = (0.3081,)
    system_copy: SystemCopy | None = None  # a system-wide copy of the files (Debian package), if one exists
    idx_files: tuple[str, ...] = ()  # the uncompressed IDX files torchvision reads from `location`, if it reads IDX

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
        augment: bool | None = None,
        normalize: bool = False,
        train_subset: int | None = None,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory)
        if train_subset is not None and train_subset < 1:
            raise ConfigError(f"data.train_subset={train_subset} is not valid; use a positive number of samples or null")
        self.augment = self.cifar_like if augment is None else augment
        self.normalize = normalize
        self.train_subset = train_subset
        self._prepared = False
        self.save_hyperparameters()

    @property
    def location(self) -> str:
        """The folder that holds the dataset's files."""
        return os.path.join(self.data_dir, self.folder)

    def check_files(self) -> None:
        """A damaged IDX file in `location` raises a one-line `DataError` naming it; missing ones are downloaded."""
        for name in self.idx_files:
            path = os.path.join(self.location, name)
            problem = idx_problem(path) if os.path.isfile(path) else None
            if problem:
                raise DataError(f"{self.dataset_cls.__name__} file {path} {problem}: delete it to have it downloaded "
                                "again, or place an intact copy there, or set data.data_dir")

    def prepare_data(self) -> None:
        """Check the files in `data_dir`, and download the train and test files there unless they are there
        already (or in the system copy, which is then decompressed into `data_dir`). Once per object."""
        if self._prepared:
            return
        self.check_files()
        if self.system_copy is None or not self.system_copy.provide(self.location):
            self._download()
        self._prepared = True

    def _download(self) -> None:
        """torchvision's download (skipped for files that are there), which loads each split once."""
        for train in (True, False):
            try:
                self.dataset_cls(self.data_dir, train=train, download=True)
            except Exception as exc:  # any failure of torchvision's download or check becomes one line
                raise DataError(
                    f"could not download {self.dataset_cls.__name__} into {self.location} ({first_line(exc)}): "
                    f"connect to the network, or place {self.files_hint} there (see README), "
                    "or set data.data_dir"
                ) from exc

    def _open(self, train: bool, transform) -> torch.utils.data.Dataset:
        try:
            return self.dataset_cls(self.data_dir, train=train, transform=transform, download=False)
        except Exception as exc:
            self.check_files()  # a damaged file: name it
            raise DataError(
                f"{self.dataset_cls.__name__} not found or corrupt in {self.location} ({first_line(exc)}): "
                f"run prepare_data() (the Trainer does), or place {self.files_hint} there, or set data.data_dir"
            ) from exc

    def transform(self, train: bool) -> v2.Compose:
        """PIL image -> float32 `[C, H, W]` in [0, 1]; augmentation only when `train`."""
        steps: list = [v2.ToImage()]
        if train and self.augment:
            size = self.input_shape[-1]
            if self.cifar_like:
                steps += [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()]
            else:
                steps += [v2.RandomCrop(size, padding=2)]
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if self.normalize:
            steps.append(v2.Normalize(self.mean, self.std))
        steps.append(v2.ToPureTensor())
        return v2.Compose(steps)

    def setup(self, stage: str | None = None) -> None:
        """Train/val from the training files (two dataset objects, one augmented); test from the test files."""
        if stage in (None, "fit", "validate") and self.train_set is None:
            augmented = self._open(True, self.transform(True))
            plain = copy.copy(augmented)  # a second dataset object over the same image arrays (no second load)
            plain.transform = self.transform(False)
            plain.transforms = StandardTransform(plain.transform, None)
            labels = np.asarray(plain.targets)
            train, val = split_indices(labels, self.val_fraction, self.seed)
            if self.train_subset is not None:
                train = subset_indices(labels, train, self.train_subset, self.seed)
            self.split = {"train": train, "val": val}
            self.train_set = Subset(augmented, train.tolist())
            self.val_set = Subset(plain, val.tolist())
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._open(False, self.transform(False))


class MNIST(TorchvisionDataModule):
    __doc__ = "MNIST handwritten digits, 1x28x28, 10 classes, 60k train / 10k test.\n" + TorchvisionDataModule.__doc__
    dataset_cls = datasets.MNIST
    folder = "MNIST/raw"
    idx_files = IDX_FILES
    name, num_classes, input_shape = "mnist", 10, (1, 28, 28)


class FashionMNIST(TorchvisionDataModule):
    __doc__ = "Fashion-MNIST, 1x28x28, 10 classes, 60k train / 10k test.\n" + TorchvisionDataModule.__doc__
    dataset_cls = datasets.FashionMNIST
    folder = "FashionMNIST/raw"
    idx_files = IDX_FILES
    name, num_classes, input_shape = "fashion_mnist", 10, (1, 28, 28)
    system_copy = SystemCopy("fashion-mnist", "apt-get install dataset-fashion-mnist", {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    })
    mean, std = (0.2860,), (0.3530,)


class CIFAR10(TorchvisionDataModule):
    __doc__ = "CIFAR-10, 3x32x32, 10 classes, 50k train / 10k test.\n" + TorchvisionDataModule.__doc__
    dataset_cls = datasets.CIFAR10
    folder = "cifar-10-batches-py"
    files_hint = "cifar-10-python.tar.gz or its extracted batches"
    cifar_like = True
    name, num_classes, input_shape = "cifar10", 10, (3, 32, 32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class CIFAR100(TorchvisionDataModule):
    __doc__ = "CIFAR-100 (fine labels), 3x32x32, 100 classes, 50k train / 10k test.\n" + TorchvisionDataModule.__doc__
    dataset_cls = datasets.CIFAR100
    folder = "cifar-100-python"
    files_hint = "cifar-100-python.tar.gz or its extracted files"
    cifar_like = True
    name, num_classes, input_shape = "cifar100", 100, (3, 32, 32)
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
