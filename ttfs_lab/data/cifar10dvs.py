"""CIFAR10-DVS (Li et al. 2017: CIFAR-10 images moving on a monitor, seen by a 128x128 DVS) as event frames.

Events come from `tonic.datasets.CIFAR10DVS` (files under `<data_dir>/CIFAR10DVS/`, downloaded when missing:
`CIFAR10DVS.zip`, which holds one zip per class, extracted to `<class>/<name>.aedat4`; tonic takes the label from
the folder name, one of airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck, and downloads
unless the folder holds at least 1,000 `.aedat4` files). The recordings are AEDAT 4.0 files (iniVation's DV
format: a header, then flatbuffer event packets) read by tonic through the `aedat` package.

The dataset has no test split: the test set is the last `test_fraction` of each class's recordings in file-name
order (fixed, the same for every seed), the rest is the training set, and validation is a seeded, stratified
part of that. One cache holds all 10,000 recordings: `<cache_dir>/cifar10dvs/T10_s64_dn10000_bin/all/`.
Framing, denoising, the cache and the one-line errors are the shared event-data part, `ttfs_lab.data.events`.

Batches: `x` float32 `[B, T, 2, size, size]`, `y` int64 `[B]` in [0, 10).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import tonic

from ttfs_lab.data.events import EventDataModule
from ttfs_lab.errors import ConfigError, DataError


class CIFAR10DVS(EventDataModule):
    """CIFAR10-DVS event frames, with a fixed per-class test split.

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        frames: number of time bins T per recording (a recording lasts about 1.3 s).
        size: frame height and width; 128 is native, smaller sizes downsample the event coordinates.
        denoise_us: tonic Denoise filter time in microseconds; None turns denoising off.
        binary: frames hold 1 where a pixel had any event in the bin; False keeps counts (clipped to 255).
        cache_dir: where the frames are cached; None means `<data_dir>/cache`.
        test_fraction: the part of each class held out as the test set (its last recordings by file name).
    """

    title = "CIFAR10-DVS"
    native = 128
    cache_splits = ("all",)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
        frames: int = 10,
        size: int = 64,
        denoise_us: int | None = 10000,
        binary: bool = True,
        cache_dir: str | None = None,
        test_fraction: float = 0.1,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory, frames, size,
                         denoise_us, binary, cache_dir)
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"data.test_fraction={test_fraction} is not valid; use a value in (0, 1)")
        self.test_fraction = test_fraction
        self.name = "cifar10dvs"
        self.num_classes = 10
        self.save_hyperparameters()

    def open_split(self, split: str) -> tonic.datasets.CIFAR10DVS:
        """tonic's CIFAR10-DVS under `<data_dir>/CIFAR10DVS`, downloaded there if missing."""
        folder = os.path.join(self.data_dir, "CIFAR10DVS")
        if importlib.util.find_spec("aedat") is None:
            raise DataError(f"reading {self.title} ({folder}) needs the aedat package for its .aedat4 files: "
                            "pip install aedat (a dependency of ttfs-lab; reinstall with make install)")
        try:
            return tonic.datasets.CIFAR10DVS(save_to=self.data_dir)
        except Exception as exc:  # a failed download, or an unreadable folder layout
            raise self.download_error(folder, exc, f"{tonic.datasets.CIFAR10DVS.filename} and its extracted "
                                      "<class>/*.aedat4 folders (airplane, ..., truck)") from exc

    def part_indices(self, part: str, labels: list[int]) -> np.ndarray:
        """Per class, the last `test_fraction` of its recordings (in file-name order) are "test", the rest "train"."""
        labels = np.asarray(labels)
        test = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)  # the cache is in file-name order
            n_test = int(round(self.test_fraction * len(members)))
            if not 0 < n_test < len(members):
                raise ConfigError(f"data.test_fraction={self.test_fraction} leaves {n_test} of the {len(members)} "
                                  f"recordings of class {int(c)} for testing; choose a fraction that leaves some "
                                  "for training and for testing")
            test.extend(members[len(members) - n_test:])
        is_test = np.zeros(len(labels), dtype=bool)
        is_test[np.asarray(test, dtype=np.int64)] = True
        return np.flatnonzero(is_test if part == "test" else ~is_test)
