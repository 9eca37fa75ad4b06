"""DataModules by name: `build_datamodule("mnist5k", batch_size=32)`.

Every DataModule yields `(x, y)` batches: images `[B, C, H, W]`, event frames `[B, T, 2, H, W]`, labels `[B]`.
The event datasets (dvsgesture, nmnist, cifar10dvs) share `ttfs_lab.data.events` (framing, cache, errors).
"""

from __future__ import annotations

from ttfs_lab.data.base import TTFSDataModule, measure_loading_throughput, split_indices
from ttfs_lab.data.cifar10dvs import CIFAR10DVS
from ttfs_lab.data.dvsgesture import DVSGesture
from ttfs_lab.data.events import EventDataModule
from ttfs_lab.data.mnist5k import MNIST5k
from ttfs_lab.data.nmnist import NMNIST
from ttfs_lab.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST
from ttfs_lab.errors import ConfigError

DATAMODULES: dict[str, type[TTFSDataModule]] = {
    "mnist5k": MNIST5k,
    "mnist": MNIST,
    "fashion_mnist": FashionMNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
    "dvsgesture": DVSGesture,
    "nmnist": NMNIST,
    "cifar10dvs": CIFAR10DVS,
}


def build_datamodule(name: str, **kwargs) -> TTFSDataModule:
    """The DataModule registered as `name`, constructed with `kwargs` (its typed `__init__` arguments)."""
    if name not in DATAMODULES:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATAMODULES)}")
    return DATAMODULES[name](**kwargs)


__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CIFAR10DVS",
    "DATAMODULES",
    "DVSGesture",
    "EventDataModule",
    "FashionMNIST",
    "MNIST",
    "MNIST5k",
    "NMNIST",
    "TTFSDataModule",
    "build_datamodule",
    "measure_loading_throughput",
    "split_indices",
]
