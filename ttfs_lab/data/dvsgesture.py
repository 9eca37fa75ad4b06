"""DVS Gesture (IBM, 11 gestures, 128x128 DVS) as event frames, computed once and cached on disk.

Events come from `tonic.datasets.DVSGesture` (files under `<data_dir>/DVSGesture/`, downloaded when missing).
Each recording becomes T frames: Denoise (optional) -> spatial Downsample to `size` -> ToFrame(n_time_bins=T)
-> binary (frame > 0) or counts clipped to 255, stored as uint8.

Cache: one folder per split and per setting, `<cache_dir>/dvsgesture/T16_s64_dn10000_bin/{train,test}/`,
holding `{i}_0.hdf5` files in tonic's DiskCachedDataset format (h5py, lzf) and `params.json` (every frame
parameter, the labels, the source files). A split folder is built under a temporary name and renamed when
complete, so an interrupted build is never read as a cache. The folder name and `params.json` both encode
every parameter, so changing T or the size can never return stale frames.

Batches: `x` float32 `[B, T, 2, size, size]` (0/1 when binary, else counts), `y` int64 `[B]` in [0, 11).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tonic
import torch
from tonic.cached_dataset import load_from_disk_cache, save_to_disk_cache
from torch.utils.data import Dataset, Subset

from ttfs_lab.data.base import TTFSDataModule, split_indices
from ttfs_lab.errors import ConfigError, DataError, first_line

CACHE_VERSION = 1  # bump when events_to_frames changes meaning
NATIVE_SIZE = 128


def events_to_frames(events: np.ndarray, frames: int, size: int, denoise_us: int | None, binary: bool) -> np.ndarray:
    """Structured events (x, y, p, t in us) -> uint8 frames `[T, 2, size, size]` (T = `frames`)."""
    if denoise_us is not None:
        events = tonic.transforms.Denoise(filter_time=denoise_us)(events)
    sensor_size = (NATIVE_SIZE, NATIVE_SIZE, 2)
    if size != NATIVE_SIZE:
        events = tonic.transforms.Downsample(spatial_factor=size / NATIVE_SIZE)(events)
        sensor_size = (size, size, 2)
    counts = tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=frames)(events)
    if binary:
        return (counts > 0).astype(np.uint8)
    return np.clip(counts, 0, 255).astype(np.uint8)


def open_events(data_dir: str, train: bool) -> tonic.datasets.DVSGesture:
    """tonic's DVS Gesture split under `<data_dir>/DVSGesture`, downloaded there if missing."""
    folder = os.path.join(data_dir, "DVSGesture")
    try:
        return tonic.datasets.DVSGesture(save_to=data_dir, train=train)
    except Exception as exc:  # a failed download, or an unreadable folder layout
        archive = tonic.datasets.DVSGesture.train_filename if train else tonic.datasets.DVSGesture.test_filename
        raise DataError(
            f"could not download DVS Gesture into {folder} ({first_line(exc)}): connect to the network, "
            f"or place {archive} and its extracted {archive.split('.')[0]}/ folder there, or set data.data_dir"
        ) from exc


def read_events(source: tonic.datasets.DVSGesture, index: int) -> tuple[np.ndarray, int]:
    """Events and label of one recording; an empty or corrupt `.npy` file raises `DataError` naming it."""
    path = source.data[index]
    try:
        events, label = source[index]
    except Exception as exc:  # numpy's EOFError / ValueError / UnpicklingError, a wrong array shape, ...
        raise DataError(
            f"event file {path} is empty or corrupt ({first_line(exc)}): delete it and re-download "
            "DVS Gesture, or remove it"
        ) from exc
    if len(events) == 0:
        raise DataError(f"event file {path} holds no events: delete it and re-download DVS Gesture, or remove it")
    return events, int(label)


class CachedFrames(Dataset):
    """One split's cache folder: item i is (float32 frames `[T, 2, H, W]`, int label)."""

    def __init__(self, folder: str, labels: list[int]) -> None:
        self.folder, self.labels = folder, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = os.path.join(self.folder, f"{index}_0.hdf5")
        try:
            frames, label = load_from_disk_cache(path)
        except (OSError, KeyError) as exc:
            raise DataError(f"cache file {path} is unreadable ({first_line(exc)}): delete {self.folder} to rebuild it") from exc
        # numpy's cast, not Tensor.float(): torch runs that cast on its OpenMP pool, which costs ~10 ms per
        # sample when the cores are busy (measured on 2 cores); numpy's single-threaded cast takes ~15 us.
        return torch.from_numpy(frames.astype(np.float32)), int(label)


class DVSGesture(TTFSDataModule):
    """DVS Gesture event frames; validation is a seeded part of the training recordings (stratified where possible).

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        frames: number of time bins T per recording (tonic ToFrame n_time_bins).
        size: frame height and width; 128 is native, smaller sizes downsample the event coordinates.
        denoise_us: tonic Denoise filter time in microseconds; None turns denoising off.
        binary: frames hold 1 where a pixel had any event in the bin; False keeps counts (clipped to 255).
        cache_dir: where the frames are cached; None means `<data_dir>/cache`.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
        frames: int = 16,
        size: int = 64,
        denoise_us: int | None = 10000,
        binary: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory)
        if frames < 1:
            raise ConfigError(f"data.frames={frames} is not valid; use a positive number of time bins")
        if not 1 <= size <= NATIVE_SIZE:
            raise ConfigError(f"data.size={size} is not valid; use 1..{NATIVE_SIZE} (128 = native resolution)")
        if denoise_us is not None and denoise_us <= 0:
            raise ConfigError(f"data.denoise_us={denoise_us} is not valid; use a positive time in us, or null for off")
        self.size, self.denoise_us, self.binary = size, denoise_us, binary
        self.cache_dir = str(cache_dir) if cache_dir is not None else os.path.join(self.data_dir, "cache")
        self.name = "dvsgesture"
        self.num_classes = 11
        self.input_shape = (2, size, size)
        self.frames = frames
        self.save_hyperparameters()

    @property
    def params(self) -> dict:
        """Every parameter the cached frames depend on."""
        return {"version": CACHE_VERSION, "frames": self.frames, "size": self.size,
                "denoise_us": self.denoise_us, "binary": self.binary}

    def cache_path(self, split: str) -> str:
        """The cache folder of `split` ("train" or "test"), e.g. `data/cache/dvsgesture/T16_s64_dn10000_bin/train`."""
        denoise = "off" if self.denoise_us is None else str(self.denoise_us)
        setting = f"T{self.frames}_s{self.size}_dn{denoise}_{'bin' if self.binary else 'count'}"
        return os.path.join(self.cache_dir, "dvsgesture", setting, split)

    def _cached_labels(self, split: str) -> list[int] | None:
        """The labels of a complete cache of `split` built with these parameters, else None."""
        try:
            with open(os.path.join(self.cache_path(split), "params.json")) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("params") != self.params:
            return None
        return manifest.get("labels")

    def _build_cache(self, split: str) -> list[int]:
        """Compute the frames of every recording of `split` into a temporary folder, then rename it into place."""
        source = open_events(self.data_dir, train=split == "train")
        final = self.cache_path(split)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=os.path.dirname(final))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder once renamed
        try:
            labels = []
            for i in range(len(source)):
                events, label = read_events(source, i)
                frames = events_to_frames(events, self.frames, self.size, self.denoise_us, self.binary)
                save_to_disk_cache(frames, label, file_path=os.path.join(tmp, f"{i}_0.hdf5"))
                labels.append(label)
            manifest = {"params": self.params, "labels": labels, "format": "tonic DiskCachedDataset {i}_0.hdf5",
                        "sources": [os.path.relpath(p, self.data_dir) for p in source.data]}
            with open(os.path.join(tmp, "params.json"), "w") as f:
                json.dump(manifest, f)
            if self._cached_labels(split) is not None:  # another process finished the same cache meanwhile
                return self._cached_labels(split)
            if os.path.isdir(final):  # stale (other parameters or version): replace it
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another process renamed its complete cache into place first
                if self._cached_labels(split) is None:
                    raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return labels

    def _ensure_cache(self, split: str) -> list[int]:
        labels = self._cached_labels(split)
        return labels if labels is not None else self._build_cache(split)

    def prepare_data(self) -> None:
        """Download the recordings if missing and build the frame caches of both splits."""
        for split in ("train", "test"):
            self._ensure_cache(split)

    def setup(self, stage: str | None = None) -> None:
        """Open the caches (building any that is missing); split validation off the training recordings."""
        if stage in (None, "fit", "validate") and self.train_set is None:
            labels = self._ensure_cache("train")
            frames = CachedFrames(self.cache_path("train"), labels)
            train, val = split_indices(labels, self.val_fraction, self.seed)
            self.split = {"train": train, "val": val}
            self.train_set, self.val_set = Subset(frames, train.tolist()), Subset(frames, val.tolist())
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = CachedFrames(self.cache_path("test"), self._ensure_cache("test"))
