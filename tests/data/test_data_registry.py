"""The dataset registry, the DataModule contract read before setup, the error classes and the shared split."""

from __future__ import annotations

import numpy as np
import pytest

from ttfs_lab.data import (CIFAR10DVS, DATAMODULES, NMNIST, DVSGesture, EventDataModule, MNIST5k, TTFSDataModule,
                           build_datamodule, split_indices)
from ttfs_lab.errors import ConfigError, DataError, TTFSLabError, first_line

EXPECTED = {
    "mnist5k": (10, (1, 28, 28), None),
    "mnist": (10, (1, 28, 28), None),
    "fashion_mnist": (10, (1, 28, 28), None),
    "cifar10": (10, (3, 32, 32), None),
    "cifar100": (100, (3, 32, 32), None),
    "dvsgesture": (11, (2, 64, 64), 16),
    "nmnist": (10, (2, 34, 34), 8),
    "cifar10dvs": (10, (2, 64, 64), 10),
}


def test_registry_holds_exactly_the_eight_datasets():
    assert set(DATAMODULES) == set(EXPECTED)
    assert all(issubclass(cls, TTFSDataModule) for cls in DATAMODULES.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_datamodule_declares_shape_before_setup_without_touching_disk(name, tmp_path):
    dm = build_datamodule(name, data_dir=str(tmp_path / "nothing_here"), batch_size=8)
    assert (dm.num_classes, dm.input_shape, dm.frames) == EXPECTED[name]
    assert dm.name == name and dm.batch_size == 8
    assert not (tmp_path / "nothing_here").exists()


def test_unknown_dataset_raises_config_error_listing_choices():
    with pytest.raises(ConfigError) as info:
        build_datamodule("imagenet")
    message = str(info.value)
    assert "unknown dataset 'imagenet'" in message and "mnist5k" in message and "dvsgesture" in message
    assert "\n" not in message


def test_dvs_settings_reach_declared_shape():
    dm = DVSGesture(frames=8, size=32)
    assert dm.input_shape == (2, 32, 32) and dm.frames == 8


@pytest.mark.parametrize(
    "kwargs", [{"val_fraction": 1.0}, {"val_fraction": -0.1}, {"batch_size": 0}, {"num_workers": -1}]
)
def test_invalid_loader_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        MNIST5k(**kwargs)


@pytest.mark.parametrize("kwargs", [{"frames": 0}, {"size": 256}, {"denoise_us": 0}])
@pytest.mark.parametrize("cls", [DVSGesture, NMNIST, CIFAR10DVS])
def test_invalid_event_settings_raise_config_error(cls, kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        cls(**kwargs)


def test_event_sizes_are_bounded_by_each_sensor():
    assert NMNIST(size=34).input_shape == (2, 34, 34) and NMNIST(size=17).input_shape == (2, 17, 17)
    with pytest.raises(ConfigError, match=r"data.size=35 .*1..34"):
        NMNIST(size=35)
    assert CIFAR10DVS(size=128).input_shape == (2, 128, 128)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_cifar10dvs_test_fraction_must_leave_both_parts(fraction):
    with pytest.raises(ConfigError, match="test_fraction"):
        CIFAR10DVS(test_fraction=fraction)


def test_event_datamodules_share_one_event_base():
    assert {name for name, cls in DATAMODULES.items() if issubclass(cls, EventDataModule)} == {
        "dvsgesture", "nmnist", "cifar10dvs"}


def test_error_classes_are_also_builtin_errors():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, TTFSLabError)
    assert issubclass(DataError, RuntimeError) and issubclass(DataError, TTFSLabError)


def test_first_line_keeps_the_cause_of_a_header_line():
    error = RuntimeError("Error downloading x.gz:\nTried http://a, got:\n<urlopen error no network>\n")
    assert first_line(error) == "Error downloading x.gz: <urlopen error no network>"
    assert first_line(OSError("disk full\nmore")) == "disk full"
    assert first_line(EOFError()) == "EOFError"


def test_split_is_disjoint_complete_and_seeded():
    labels = np.repeat(np.arange(5), 20)
    train, val = split_indices(labels, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    again, _ = split_indices(labels, 0.2, seed=3)
    other, _ = split_indices(labels, 0.2, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_split_is_stratified_when_possible_and_falls_back_otherwise():
    labels = np.repeat(np.arange(5), 20)
    _, val = split_indices(labels, 0.2, seed=0)
    assert np.bincount(labels[val]).tolist() == [4] * 5
    singleton = np.array([0, 1, 1, 1, 2, 2, 2, 2])  # class 0 has one sample: cannot stratify
    train, val = split_indices(singleton, 0.25, seed=0)
    assert len(val) == 2 and set(train).isdisjoint(val)


def test_zero_val_fraction_gives_empty_validation():
    train, val = split_indices(np.arange(10) % 2, 0.0, seed=0)
    assert len(val) == 0 and len(train) == 10
