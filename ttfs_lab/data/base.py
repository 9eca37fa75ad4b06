"""The DataModule base class shared by every dataset, the seeded train/val split, and a loading benchmark.

Batches are `(x, y)`: images `x` float32 `[B, C, H, W]` in [0, 1]; event data `x` float32 `[B, T, 2, H, W]`;
`y` int64 `[B]`. See docs/method.md section 1 (input encoding) and section 7 (architectures per dataset).
"""

from __future__ import annotations

import time

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

from ttfs_lab.errors import ConfigError


class TTFSDataModule(L.LightningDataModule):
    """Base DataModule: typed loader settings, a seeded validation split, and the loaders.

    Args:
        data_dir: folder that holds the downloaded datasets (and, for DVS Gesture, the frame cache).
        batch_size: samples per batch, for train, val and test.
        num_workers: DataLoader worker processes; 0 loads in the main process. Workers are persistent.
        val_fraction: fraction of the training set held out (seeded) for validation; 0 disables validation.
        seed: seed of the train/val split and of the training-loader shuffle.
        pin_memory: pin host memory of batches (faster copies to a GPU).

    Every subclass sets, in `__init__` (they are read before `setup`, e.g. by LightningCLI's
    `link_arguments(..., apply_on="instantiate")` and by the model builder):
        name: registry name, e.g. "mnist5k".
        num_classes: number of labels; `y` is in [0, num_classes).
        input_shape: (C, H, W) of one image or one event frame.
        frames: number of time bins T of event data, None for static images.
    and, in `setup`, `train_set`, `val_set` and `test_set` (map-style datasets of `(x, y)` samples).
    """

    name: str = ""
    num_classes: int = 0
    input_shape: tuple[int, int, int] = (0, 0, 0)
    frames: int | None = None

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} is not valid; use a positive integer")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers={num_workers} is not valid; use 0 or more")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={val_fraction} is not valid; use a value in [0, 1)")
        self.data_dir = str(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=stack_samples,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (seeded) training batches."""
        if self.train_set is None:
            self.setup("fit")
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order (held out from the training set)."""
        if self.val_set is None:
            self.setup("fit")
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in a fixed order (the dataset's separate test set)."""
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test batches."""
        return self.test_dataloader()


def stack_samples(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate `(x, y)` samples into `x` `[B, *x.shape]` (dtype kept) and `y` int64 `[B]`, stacking with numpy.

    torch's default collate stacks with `torch.stack`, which runs on torch's OpenMP pool: on 2 busy cores
    (DataLoader workers or other processes) one stack of 64 DVS samples `[16, 2, 64, 64]` took 25-500 ms;
    numpy's single-threaded stack takes about 4 ms, independent of the load.
    """
    xs, ys = zip(*batch)
    x = torch.from_numpy(np.stack([np.asarray(v) for v in xs]))
    return x, torch.tensor([int(v) for v in ys], dtype=torch.int64)


def split_indices(labels, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `range(len(labels))` into sorted (train, val) index arrays.

    The validation part has round(val_fraction * n) samples. It is stratified by label when every class
    has at least two samples and both parts can hold every class; otherwise it is a plain seeded draw.
    """
    labels = np.asarray(labels)
    n = len(labels)
    n_val = int(round(val_fraction * n))
    index = np.arange(n)
    if n_val == 0:
        return index, index[:0]
    _, counts = np.unique(labels, return_counts=True)
    can_stratify = counts.min() >= 2 and min(n_val, n - n_val) >= len(counts)
    train, val = train_test_split(
        index, test_size=n_val, random_state=seed, stratify=labels if can_stratify else None
    )
    return np.sort(train), np.sort(val)


def subset_indices(labels, index: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded, class-stratified draw of ``size`` entries of ``index`` (sorted); all of it if ``size >= len``."""
    index = np.asarray(index)
    if size >= len(index):
        return index
    labels = np.asarray(labels)[index]
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and min(size, len(index) - size) >= len(counts) else None
    keep, _ = train_test_split(index, train_size=size, random_state=seed, stratify=stratify)
    return np.sort(keep)


def measure_loading_throughput(dm: TTFSDataModule, batches: int = 20) -> float:
    """Samples per second delivered by `dm.train_dataloader()`, after data preparation (and any cache build).

    The first batch (worker start-up) is not timed; the loader is re-iterated if it has fewer than
    `batches` batches.
    """
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    samples, done = 0, 0
    start = time.perf_counter()
    while done < batches:
        try:
            x, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        samples += len(x)
        done += 1
    return samples / (time.perf_counter() - start)
