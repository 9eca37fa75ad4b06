"""DVS Gesture (IBM, 11 gestures, 128x128 DVS) as event frames, computed once and cached on disk.

Events come from `tonic.datasets.DVSGesture` (files under `<data_dir>/DVSGesture/`, downloaded when missing:
`ibmGesture{Train,Test}.tar.gz` and their extracted `ibmGesture{Train,Test}/userXX_<lighting>/<label>.npy`).
Framing, denoising, the parameter-keyed cache `<cache_dir>/dvsgesture/T16_s64_dn10000_bin/{train,test}/` and
the one-line errors are the shared event-data part, `ttfs_lab.data.events`.

Batches: `x` float32 `[B, T, 2, size, size]` (0/1 when binary, else counts), `y` int64 `[B]` in [0, 11).
"""

from __future__ import annotations

import os

import tonic

from ttfs_lab.data.events import EventDataModule

NATIVE_SIZE = 128


class DVSGesture(EventDataModule):
    """DVS Gesture event frames; validation is a seeded part of the training recordings (stratified where possible).

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        frames: number of time bins T per recording (tonic ToFrame n_time_bins).
        size: frame height and width; 128 is native, smaller sizes downsample the event coordinates.
        denoise_us: tonic Denoise filter time in microseconds; None turns denoising off.
        binary: frames hold 1 where a pixel had any event in the bin; False keeps counts (clipped to 255).
        cache_dir: where the frames are cached; None means `<data_dir>/cache`.
    """

    title = "DVS Gesture"
    native = NATIVE_SIZE

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
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory, frames, size,
                         denoise_us, binary, cache_dir)
        self.name = "dvsgesture"
        self.num_classes = 11
        self.save_hyperparameters()

    def open_split(self, split: str) -> tonic.datasets.DVSGesture:
        """tonic's DVS Gesture split under `<data_dir>/DVSGesture`, downloaded there if missing."""
        train = split == "train"
        try:
            return tonic.datasets.DVSGesture(save_to=self.data_dir, train=train)
        except Exception as exc:  # a failed download, or an unreadable folder layout
            archive = tonic.datasets.DVSGesture.train_filename if train else tonic.datasets.DVSGesture.test_filename
            raise self.download_error(os.path.join(self.data_dir, "DVSGesture"), exc,
                                      f"{archive} and its extracted {archive.split('.')[0]}/ folder") from exc
