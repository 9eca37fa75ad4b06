"""Event datasets as frames, computed once and cached on disk: the part DVS Gesture, N-MNIST and CIFAR10-DVS share.

A dataset is a subclass of `EventDataModule` that says which tonic dataset it reads (`open_split`), its sensor
(`native` pixels square), the splits it caches and, in its error messages, what to place where. Everything else
is here: each recording becomes T frames, Denoise (optional; tonic's filter, compiled) -> spatial Downsample to
`size` -> ToFrame(n_time_bins=T) -> binary (frame > 0) or counts clipped to 255, stored as uint8 (docs/method.md
section 1, input encoding).

Cache: one folder per dataset, split and setting, `<cache_dir>/<name>/T16_s64_dn10000_bin/<split>/`, holding
`{i}_0.hdf5` files in tonic's DiskCachedDataset format (h5py, lzf) and `params.json` (every frame parameter, the
labels, the source files). A split folder is built under a temporary name, under a lock shared by every process
that needs the same setting (sweep workers, DataLoader workers, DDP ranks on one file system), and renamed when
complete: it is built once, an interrupted build is never read as a cache, and a process that waited finds it
ready. The folder name and `params.json` both encode every parameter, so changing T or the size can never return
stale frames.

Errors are one line (`DataError`): a failed download names the folder and what to place there; an unreadable,
truncated or empty recording, or one with events outside the sensor, names the file.

Batches: `x` float32 `[B, T, 2, size, size]` (0/1 when binary, else counts), `y` int64 `[B]`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tonic
import torch
from tonic.cached_dataset import load_from_disk_cache, save_to_disk_cache
from torch.utils.data import Dataset, Subset

from ttfs_lab.data.base import TTFSDataModule, split_indices
from ttfs_lab.errors import ConfigError, DataError, first_line

CACHE_VERSION = 1  # bump when events_to_frames changes meaning

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; without it denoising runs as plain Python
    njit = None


def _denoise_mask(x, y, t, filter_time, width, height):
    """tonic's denoise loop (``tonic.functional.denoise_numpy``) over int64 x, y and float64 t: keep an event when
    a 4-neighbour pixel had an event less than ``filter_time`` before it."""
    memory = np.full((width, height), filter_time)
    keep = np.zeros(len(x), dtype=np.bool_)
    for i in range(len(x)):
        xi, yi, ti = x[i], y[i], t[i]
        memory[xi, yi] = ti + filter_time
        keep[i] = ((xi > 0 and memory[xi - 1, yi] > ti) or (xi < width - 1 and memory[xi + 1, yi] > ti)
                   or (yi > 0 and memory[xi, yi - 1] > ti) or (yi < height - 1 and memory[xi, yi + 1] > ti))
    return keep


_denoise_compiled = njit(cache=True, nogil=True)(_denoise_mask) if njit is not None else _denoise_mask


def denoise(events: np.ndarray, filter_time: int) -> np.ndarray:
    """The events tonic's `Denoise(filter_time)` keeps, in their order, compiled with numba: tonic loops over the
    events in Python (7-9 us per event on 2 busy cores: an hour or more for DVS Gesture); this takes 30-50 ns."""
    if len(events) == 0:
        return events
    x, y = (np.ascontiguousarray(events[k], dtype=np.int64) for k in ("x", "y"))
    t = np.ascontiguousarray(events["t"], dtype=np.float64)  # tonic's memory is float64 too: the same comparisons
    width, height = int(x.max()) + 1, int(y.max()) + 1  # tonic's: the recording's extent, not the sensor's
    return events[_denoise_compiled(x, y, t, float(filter_time), width, height)]


def events_to_frames(events: np.ndarray, frames: int, size: int, denoise_us: int | None, binary: bool,
                     native: int = 128) -> np.ndarray:
    """Structured events (x, y, p, t in us) on a `native` x `native` sensor -> uint8 frames `[T, 2, size, size]`."""
    if denoise_us is not None:
        events = denoise(events, denoise_us)
    sensor_size = (native, native, 2)
    if size != native:
        events = tonic.transforms.Downsample(spatial_factor=size / native)(events)
        sensor_size = (size, size, 2)
    counts = tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=frames)(events)
    if binary:
        return (counts > 0).astype(np.uint8)
    return np.clip(counts, 0, 255).astype(np.uint8)


def check_events(events: np.ndarray, path: str, native: int, fix: str) -> None:
    """A `DataError` naming `path` when the recording holds no events, or events no sensor can produce."""
    if len(events) == 0:
        raise DataError(f"event file {path} holds no events: {fix}")
    x, y, p = (np.asarray(events[k]).astype(np.int64) for k in ("x", "y", "p"))
    if x.min() < 0 or y.min() < 0 or x.max() >= native or y.max() >= native:
        raise DataError(f"event file {path} is corrupt (events outside the {native}x{native} sensor: x in "
                        f"[{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}]): {fix}")
    if p.min() < 0 or p.max() > 1:
        raise DataError(f"event file {path} is corrupt (polarities in [{p.min()}, {p.max()}], not 0 or 1): {fix}")


def sort_recordings(source) -> None:
    """Order tonic's recording list by file path (tonic lists some folders in file-system order)."""
    n = len(source.data)
    order = sorted(range(n), key=lambda i: str(source.data[i]))
    for attr in ("data", "targets", "users", "lighting"):
        values = getattr(source, attr, None)
        if isinstance(values, list) and len(values) == n:
            setattr(source, attr, [values[i] for i in order])


@contextlib.contextmanager
def build_lock(folder: str):
    """An exclusive inter-process lock (flock on `folder/.lock`) held for the block; a no-op without flock."""
    os.makedirs(folder, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: the temporary folder + rename still keep a half-built cache unreadable
        yield
        return
    with open(os.path.join(folder, ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
            raise DataError(f"cache file {path} is unreadable ({first_line(exc)}): delete {self.folder} to rebuild "
                            "it") from exc
        # numpy's cast, not Tensor.float(): torch runs that cast on its OpenMP pool, which costs ~10 ms per
        # sample when the cores are busy (measured on 2 cores); numpy's single-threaded cast takes ~15 us.
        return torch.from_numpy(frames.astype(np.float32)), int(label)


class EventDataModule(TTFSDataModule):
    """Event frames from a tonic dataset, cached once per setting; validation is a seeded part of the training
    recordings (stratified where possible).

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        frames: number of time bins T per recording (tonic ToFrame n_time_bins).
        size: frame height and width; `native` is the sensor's, smaller sizes downsample the event coordinates.
        denoise_us: tonic Denoise filter time in microseconds; None turns denoising off.
        binary: frames hold 1 where a pixel had any event in the bin; False keeps counts (clipped to 255).
        cache_dir: where the frames are cached; None means `<data_dir>/cache`.

    A subclass sets `name`, `num_classes`, `title` (its name in messages), `native` (sensor width = height),
    `cache_splits` (the splits cached, default train and test) and implements `open_split`; a dataset without
    a test split caches one split and implements `part_indices`.
    """

    title: str = ""
    native: int = 128
    cache_splits: tuple[str, ...] = ("train", "test")

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
        if not 1 <= size <= self.native:
            raise ConfigError(f"data.size={size} is not valid; use 1..{self.native} "
                              f"({self.native} = native resolution)")
        if denoise_us is not None and denoise_us <= 0:
            raise ConfigError(f"data.denoise_us={denoise_us} is not valid; use a positive time in us, or null for off")
        self.size, self.denoise_us, self.binary = size, denoise_us, binary
        self.cache_dir = str(cache_dir) if cache_dir is not None else os.path.join(self.data_dir, "cache")
        self.input_shape = (2, size, size)
        self.frames = frames

    # -- what each dataset says ---------------------------------------------------------------------------------

    def open_split(self, split: str):
        """tonic's dataset of `split` (one of `cache_splits`), downloaded if missing; `DataError` if that fails."""
        raise NotImplementedError

    def part_indices(self, part: str, labels: list[int]) -> np.ndarray:
        """For a dataset that caches one split: the indices of `part` ("train" or "test") in it."""
        raise NotImplementedError

    def check_file(self, path: str) -> None:
        """Checks of a raw file before tonic reads it (e.g. N-MNIST's whole 5-byte records); `DataError` naming it."""

    @property
    def fix(self) -> str:
        """What to do about a bad recording."""
        return f"delete it and re-download {self.title}, or remove it"

    def download_error(self, folder: str, exc: BaseException, place: str) -> DataError:
        """The one line for a missing dataset whose download failed: the folder, the cause, what to place there."""
        return DataError(f"could not download {self.title} into {folder} ({first_line(exc)}): connect to the "
                         f"network, or place {place} there, or set data.data_dir")

    # -- the cache ----------------------------------------------------------------------------------------------

    @property
    def params(self) -> dict:
        """Every parameter the cached frames depend on."""
        return {"version": CACHE_VERSION, "frames": self.frames, "size": self.size,
                "denoise_us": self.denoise_us, "binary": self.binary}

    def cache_path(self, split: str) -> str:
        """The cache folder of `split`, e.g. `data/cache/dvsgesture/T16_s64_dn10000_bin/train`."""
        denoise = "off" if self.denoise_us is None else str(self.denoise_us)
        setting = f"T{self.frames}_s{self.size}_dn{denoise}_{'bin' if self.binary else 'count'}"
        return os.path.join(self.cache_dir, self.name, setting, split)

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

    def read_events(self, source, index: int) -> tuple[np.ndarray, int]:
        """Events and label of one recording; an unreadable, truncated or empty file raises `DataError` naming it."""
        path = str(source.data[index])
        self.check_file(path)
        try:
            events, label = source[index]
        except DataError:
            raise
        except Exception as exc:  # numpy's EOFError / ValueError, aedat's RuntimeError, a wrong array shape, ...
            raise DataError(f"event file {path} is empty or corrupt ({first_line(exc)}): {self.fix}") from exc
        check_events(events, path, self.native, self.fix)
        return events, int(label)

    def _build_cache(self, split: str) -> list[int]:
        """Compute the frames of every recording of `split` into a temporary folder, then rename it into place."""
        source = self.open_split(split)
        sort_recordings(source)
        final = self.cache_path(split)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=os.path.dirname(final))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder once renamed
        start = time.perf_counter()
        print(f"data: building the {self.title} frame cache {final} ({len(source)} recordings, once)", flush=True)
        try:
            labels = []
            for i in range(len(source)):
                events, label = self.read_events(source, i)
                frames = events_to_frames(events, self.frames, self.size, self.denoise_us, self.binary, self.native)
                save_to_disk_cache(frames, label, file_path=os.path.join(tmp, f"{i}_0.hdf5"))
                labels.append(label)
            manifest = {"params": self.params, "labels": labels, "format": "tonic DiskCachedDataset {i}_0.hdf5",
                        "sources": [os.path.relpath(str(p), self.data_dir) for p in source.data]}
            with open(os.path.join(tmp, "params.json"), "w") as f:
                json.dump(manifest, f)
            if self._cached_labels(split) is not None:  # a process without flock finished it meanwhile
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
        print(f"data: built {final} in {time.perf_counter() - start:.1f} s", flush=True)
        return labels

    def _ensure_cache(self, split: str) -> list[int]:
        labels = self._cached_labels(split)
        if labels is not None:
            return labels
        with build_lock(os.path.dirname(self.cache_path(split))):  # one builder per setting; the others wait
            labels = self._cached_labels(split)
            return labels if labels is not None else self._build_cache(split)

    def prepare_data(self) -> None:
        """Download the recordings if missing and build the frame cache of every split."""
        for split in self.cache_splits:
            self._ensure_cache(split)

    def _part(self, part: str) -> tuple[CachedFrames, np.ndarray]:
        """The cache that holds `part` ("train" or "test") and the indices of `part` in it."""
        split = part if part in self.cache_splits else self.cache_splits[0]
        labels = self._ensure_cache(split)
        frames = CachedFrames(self.cache_path(split), labels)
        index = np.arange(len(labels)) if split == part else self.part_indices(part, labels)
        return frames, index

    def setup(self, stage: str | None = None) -> None:
        """Open the caches (building any that is missing); split validation off the training recordings."""
        if stage in (None, "fit", "validate") and self.train_set is None:
            frames, index = self._part("train")
            train, val = split_indices([frames.labels[i] for i in index], self.val_fraction, self.seed)
            self.split = {"train": index[train], "val": index[val]}
            self.train_set = Subset(frames, self.split["train"].tolist())
            self.val_set = Subset(frames, self.split["val"].tolist())
        if stage in (None, "test", "predict") and self.test_set is None:
            frames, index = self._part("test")
            self.test_set = frames if len(index) == len(frames) else Subset(frames, index.tolist())
