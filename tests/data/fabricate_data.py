"""Fabricate tiny datasets on disk, in exactly the layout the real downloads produce (no network).

Import from other test folders with `from tests.data.fabricate_data import make_dvsgesture` (pytest run as
`python -m pytest` from the repository root, as `make test` does); tests in tests/data use
`from fabricate_data import ...`.

- `make_mnist_idx(root, n_train, n_test, name="MNIST")`: `root/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`
  (uncompressed IDX, big-endian headers), which torchvision's MNIST / FashionMNIST read without downloading.
- `make_cifar(root, n_train, n_test, classes=10)`: `root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`
  or `root/cifar-100-python/{train,test,meta}` as pickled dicts. Their md5 sums cannot match torchvision's
  table, so a test must also call `skip_cifar_md5(monkeypatch)`.
- `make_dvsgesture(root, n_per_split=100, events=300)` and `dvs_files(root, split)`: the DVS Gesture tree tonic
  reads, from the package's one fabricator (`ttfs_lab.data.fabricate`, which `ttfs-lab bench` also uses).
- `make_nmnist(root, n_per_split=10000)` / `nmnist_files(root, split)` and `make_cifar10dvs(root, n_per_class=100)`
  / `cifar10dvs_files(root)`: N-MNIST's `.bin` and CIFAR10-DVS's `.aedat4` trees, from the same module. Their
  defaults are the file counts below which tonic downloads; a test that fabricates fewer (to keep the frame cache
  small) must also call `accept_small_tonic_trees(monkeypatch)`.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

from ttfs_lab.data.fabricate import (  # noqa: F401  (re-exported for the tests)
    cifar10dvs_files,
    dvs_files,
    make_cifar10dvs,
    make_dvsgesture,
    make_nmnist,
    nmnist_files,
)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX file: magic 0x0000 08 <ndim> (unsigned bytes), one big-endian uint32 per dimension, then the data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _balanced_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % classes)


def make_mnist_idx(root, n_train: int = 64, n_test: int = 32, name: str = "MNIST", seed: int = 0) -> Path:
    """Write MNIST-format IDX files under `root/<name>/raw` (name "MNIST" or "FashionMNIST"); return that folder."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", _balanced_labels(n, 10, rng))
    return raw


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def make_cifar(root, n_train: int = 50, n_test: int = 20, classes: int = 10, seed: int = 0) -> Path:
    """Write CIFAR-10 (classes=10) or CIFAR-100 (classes=100) python-pickle batches under `root`; return the folder."""
    rng = np.random.default_rng(seed)
    images = lambda n: rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # noqa: E731  rows: R, G, B planes
    if classes == 10:
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        labels = _balanced_labels(n_train, 10, rng)
        for b, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
            _pickle(folder / f"data_batch_{b}", {"data": images(len(part)), "labels": labels[part].tolist()})
        _pickle(folder / "test_batch", {"data": images(n_test), "labels": _balanced_labels(n_test, 10, rng).tolist()})
        _pickle(folder / "batches.meta", {"label_names": [f"class{c}" for c in range(10)]})
    elif classes == 100:
        folder = Path(root) / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("test", n_test)):
            fine = _balanced_labels(n, 100, rng)
            _pickle(folder / split, {"data": images(n), "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()})
        _pickle(folder / "meta", {"fine_label_names": [f"class{c}" for c in range(100)],
                                  "coarse_label_names": [f"super{c}" for c in range(20)]})
    else:
        raise ValueError(f"classes={classes}; use 10 or 100")
    return folder


def skip_cifar_md5(monkeypatch) -> None:
    """Make torchvision's CIFAR check only that files exist: fabricated batches cannot match the real md5 sums.

    torchvision.datasets.cifar calls `check_integrity(path, md5)` on every batch and on the meta file; with the
    real md5 table it would reject our files and try to download.
    """
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def accept_small_tonic_trees(monkeypatch) -> None:
    """Let tonic accept a fabricated tree smaller than the real dataset: only the file count is relaxed.

    tonic's ``_check_exists`` wants the archive file and at least N extracted files (N-MNIST 10,000 ``.bin`` per
    split, CIFAR10-DVS 1,000 ``.aedat4``, DVS Gesture 100 ``.npy``) and downloads otherwise. This lowers N to 1;
    the archive check, the folder layout, the file names and tonic's readers stay as they are.
    """
    import tonic.dataset

    count = tonic.dataset.Dataset._folder_contains_at_least_n_files_of_type
    monkeypatch.setattr(tonic.dataset.Dataset, "_folder_contains_at_least_n_files_of_type",
                        lambda self, n_files, file_type: count(self, 1, file_type))
