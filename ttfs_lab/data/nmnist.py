"""N-MNIST (Orchard et al. 2015: MNIST digits seen by an ATIS sensor in three saccades, 34x34) as event frames.

Events come from `tonic.datasets.NMNIST` (files under `<data_dir>/NMNIST/`, downloaded when missing: `train.zip`
and `test.zip`, extracted to `Train/<digit>/<number>.bin` and `Test/<digit>/<number>.bin`; tonic takes the label
from the folder name and downloads unless a split holds at least 10,000 `.bin` files). Each `.bin` file is a
sequence of 40-bit records, one per event: byte 0 x, byte 1 y, then bit 7 of byte 2 the polarity and the other
23 bits the timestamp in microseconds (big-endian); a record with y = 240 marks a timestamp overflow (tonic's
`read_mnist_file`). A file whose length is not a whole number of records is truncated.

Framing, denoising, the parameter-keyed cache `<cache_dir>/nmnist/T8_s34_dn10000_bin/{train,test}/` and the
one-line errors are the shared event-data part, `ttfs_lab.data.events`.

Batches: `x` float32 `[B, T, 2, size, size]`, `y` int64 `[B]` in [0, 10).
"""

from __future__ import annotations

import os

import tonic

from ttfs_lab.data.events import EventDataModule
from ttfs_lab.errors import DataError

RECORD_BYTES = 5


class NMNIST(EventDataModule):
    """N-MNIST event frames; validation is a seeded, stratified part of the 60,000 training recordings.

    Args:
        data_dir, batch_size, num_workers, val_fraction, seed, pin_memory: see `TTFSDataModule`.
        frames: number of time bins T per recording (the three saccades last about 300 ms).
        size: frame height and width; 34 is native, smaller sizes downsample the event coordinates.
        denoise_us: tonic Denoise filter time in microseconds; None turns denoising off.
        binary: frames hold 1 where a pixel had any event in the bin; False keeps counts (clipped to 255).
        cache_dir: where the frames are cached; None means `<data_dir>/cache`.
    """

    title = "N-MNIST"
    native = 34

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        pin_memory: bool = False,
        frames: int = 8,
        size: int = 34,
        denoise_us: int | None = 10000,
        binary: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_fraction, seed, pin_memory, frames, size,
                         denoise_us, binary, cache_dir)
        self.name = "nmnist"
        self.num_classes = 10
        self.save_hyperparameters()

    def open_split(self, split: str) -> tonic.datasets.NMNIST:
        """tonic's N-MNIST split under `<data_dir>/NMNIST`, downloaded there if missing."""
        train = split == "train"
        try:
            return tonic.datasets.NMNIST(save_to=self.data_dir, train=train)
        except Exception as exc:  # a failed download, or an unreadable folder layout
            cls = tonic.datasets.NMNIST
            archive, folder = (cls.train_filename, cls.train_folder) if train else (cls.test_filename, cls.test_folder)
            raise self.download_error(os.path.join(self.data_dir, "NMNIST"), exc,
                                      f"{archive} and its extracted {folder}/<digit>/*.bin files "
                                      f"({'60,000' if train else '10,000'} recordings)") from exc

    def check_file(self, path: str) -> None:
        """A file that is not a whole number of 5-byte event records is truncated (tonic would misread it)."""
        try:
            length = os.path.getsize(path)
        except OSError as exc:
            raise DataError(f"event file {path} is unreadable ({exc.strerror}): {self.fix}") from exc
        if length % RECORD_BYTES:
            raise DataError(f"event file {path} is truncated ({length} bytes, not a whole number of "
                            f"{RECORD_BYTES}-byte event records): {self.fix}")
