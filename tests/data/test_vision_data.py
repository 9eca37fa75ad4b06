"""MNIST, Fashion-MNIST, CIFAR-10/100 DataModules on fabricated files in torchvision's on-disk layout."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import urllib.error

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
import torchvision.datasets.mnist

from fabricate_data import make_mnist_idx
from ttfs_lab.data import CIFAR10, CIFAR100, MNIST, FashionMNIST
from ttfs_lab.data.system_source import SYSTEM_DATASETS_ENV
from ttfs_lab.errors import ConfigError, DataError

# class, fixture that fabricates its files, (n_train, n_test) fabricated there
CASES = {
    "mnist": (MNIST, "mnist_dir", (64, 32)),
    "fashion_mnist": (FashionMNIST, "fashion_dir", (64, 32)),
    "cifar10": (CIFAR10, "cifar10_dir", (50, 20)),
    "cifar100": (CIFAR100, "cifar100_dir", (200, 40)),
}


def make(name, request, **kwargs):
    cls, fixture, sizes = CASES[name]
    dm = cls(data_dir=str(request.getfixturevalue(fixture)), batch_size=16, **kwargs)
    dm.prepare_data()  # files are present: must not try to download
    dm.setup("fit")
    dm.setup("test")
    return dm, sizes


@pytest.mark.parametrize("name", sorted(CASES))
def test_batches_have_declared_shape_dtype_range_and_labels(name, request):
    dm, _ = make(name, request)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.dtype == torch.float32 and x.shape[1:] == dm.input_shape
        assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
        assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < dm.num_classes


@pytest.mark.parametrize("name", sorted(CASES))
def test_val_split_comes_from_train_files_disjoint_and_seeded(name, request):
    dm, (n_train, n_test) = make(name, request)
    train, val = dm.split["train"], dm.split["val"]
    assert len(train) + len(val) == n_train and len(val) == round(0.1 * n_train)
    assert set(train).isdisjoint(val)
    assert len(dm.test_set) == n_test
    again = type(dm)(data_dir=dm.data_dir)
    again.setup("fit")
    other = type(dm)(data_dir=dm.data_dir, seed=1)
    other.setup("fit")
    assert np.array_equal(again.split["val"], val) and not np.array_equal(other.split["val"], val)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_train_is_augmented_but_val_is_not(name, request):
    dm, _ = make(name, request)
    assert dm.train_set.dataset is not dm.val_set.dataset
    assert dm.train_set.dataset.data is dm.val_set.dataset.data  # the images are loaded once
    i = dm.split["train"][0]
    raw = torch.from_numpy(dm.train_set.dataset.data[i]).permute(2, 0, 1).float() / 255
    draws = [dm.train_set[0][0] for _ in range(10)]
    assert any(not torch.equal(d, raw) for d in draws)
    j = dm.split["val"][0]
    raw_val = torch.from_numpy(dm.val_set.dataset.data[j]).permute(2, 0, 1).float() / 255
    assert all(torch.allclose(dm.val_set[0][0], raw_val) for _ in range(5))
    assert torch.allclose(dm.test_set[0][0], torch.from_numpy(dm.test_set.data[0]).permute(2, 0, 1).float() / 255)


def test_mnist_is_not_augmented_by_default(request):
    dm, _ = make("mnist", request)
    i = dm.split["train"][0]
    x = dm.train_set[0][0]
    assert type(x) is torch.Tensor  # a plain tensor, not a torchvision tv_tensors.Image
    assert torch.allclose(x, dm.train_set.dataset.data[i][None].float() / 255)


def test_normalize_standardizes_the_images(request):
    dm, _ = make("cifar10", request, normalize=True)
    x, _ = next(iter(dm.test_dataloader()))
    assert x.min() < 0 and x.max() > 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_training_and_one_test_step(name, request, one_step):
    cls, fixture, _ = CASES[name]
    before, after, metrics = one_step(cls(data_dir=str(request.getfixturevalue(fixture)), batch_size=8))
    assert not torch.equal(before, after)
    assert "test/acc" in metrics


def _network_down(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(
    "cls, module, folder",
    [
        (MNIST, torchvision.datasets.mnist, "MNIST/raw"),
        (FashionMNIST, torchvision.datasets.mnist, "FashionMNIST/raw"),
        (CIFAR10, torchvision.datasets.cifar, "cifar-10-batches-py"),
        (CIFAR100, torchvision.datasets.cifar, "cifar-100-python"),
    ],
)
def test_missing_files_and_failed_download_raise_one_line_data_error(cls, module, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(module, "download_and_extract_archive", _network_down)
    dm = cls(data_dir=str(tmp_path))
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message
    assert f"could not download {cls.dataset_cls.__name__} into {tmp_path}/{folder}" in message
    assert "Temporary failure in name resolution" in message and "data.data_dir" in message


def test_setup_without_files_raises_data_error_naming_the_folder(tmp_path):
    with pytest.raises(DataError, match=f"MNIST not found or corrupt in {tmp_path}/MNIST/raw"):
        MNIST(data_dir=str(tmp_path)).setup("fit")


def _system_fashion_copy(tmp_path, monkeypatch, n_train=64, n_test=32):
    """Fabricated Debian layout: <root>/fashion-mnist/*-ubyte.gz, the md5 table set to the fabricated contents."""
    raw = make_mnist_idx(tmp_path / "made", n_train, n_test, name="FashionMNIST")
    system = tmp_path / "usr-share-datasets" / "fashion-mnist"
    system.mkdir(parents=True)
    md5 = {}
    for path in raw.iterdir():
        data = path.read_bytes()
        (system / f"{path.name}.gz").write_bytes(gzip.compress(data))
        md5[path.name] = hashlib.md5(data).hexdigest()
    assert set(md5) == set(FashionMNIST.system_copy.md5)
    monkeypatch.setenv(SYSTEM_DATASETS_ENV, str(system.parent))
    monkeypatch.setattr(FashionMNIST, "system_copy", dataclasses.replace(FashionMNIST.system_copy, md5=md5))
    return system, raw


def test_fashion_mnist_uses_the_system_copy_when_data_dir_lacks_it(tmp_path, monkeypatch, capsys):
    system, raw = _system_fashion_copy(tmp_path, monkeypatch)
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _network_down)
    dm = FashionMNIST(data_dir=str(tmp_path / "data"), batch_size=16)
    dm.prepare_data()
    assert f"using the system copy {system}" in capsys.readouterr().out
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.split["train"]) + len(dm.split["val"]) == 64 and len(dm.test_set) == 32
    made = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    assert np.array_equal(dm.test_set.data.numpy(), made)  # the very pixels of the system files
    FashionMNIST(data_dir=str(tmp_path / "data")).prepare_data()  # second time: data_dir has them
    assert f"using {tmp_path / 'data' / 'FashionMNIST' / 'raw'}" in capsys.readouterr().out


def test_fashion_mnist_prefers_data_dir_over_the_system_copy(tmp_path, monkeypatch, capsys):
    _system_fashion_copy(tmp_path, monkeypatch)
    make_mnist_idx(tmp_path / "data", 40, 20, name="FashionMNIST", seed=3)
    dm = FashionMNIST(data_dir=str(tmp_path / "data"))
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_set) == 20 and "system copy" not in capsys.readouterr().out


def test_corrupt_system_copy_is_one_line_naming_the_file_and_leaves_nothing_behind(tmp_path, monkeypatch):
    system, _ = _system_fashion_copy(tmp_path, monkeypatch)
    bad = system / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(10)))
    dm = FashionMNIST(data_dir=str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message and str(bad) in message and "corrupt" in message and "apt-get install" in message
    assert not (tmp_path / "data" / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte").exists()
    assert not list((tmp_path / "data" / "FashionMNIST" / "raw").glob("*.partial-*"))
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        dm.prepare_data()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("damage, words", [
    ("truncated", "is truncated (50092 bytes; its IDX header declares 64x28x28 values, 50192 bytes)"),
    ("garbage", "is not an IDX file (9 bytes, no IDX magic number)"),
])
def test_a_damaged_idx_file_is_one_line_naming_it_in_prepare_and_setup(name, damage, words, request, monkeypatch):
    """torchvision would say only "shape '[64, 28, 28]' is invalid"; Fashion-MNIST used not to read the files in
    prepare_data at all (the error then came in setup, after the Trainer's start-up lines)."""
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _network_down)
    cls, fixture, _ = CASES[name]
    root = request.getfixturevalue(fixture)
    bad = root / cls.folder / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100] if damage == "truncated" else b"not idx\n\n")
    for step in (lambda dm: dm.prepare_data(), lambda dm: dm.setup("fit")):
        with pytest.raises(DataError) as info:
            step(cls(data_dir=str(root)))
        message = str(info.value)
        assert message.startswith(f"{cls.dataset_cls.__name__} file {bad} {words}: delete it") and "\n" not in message


def test_prepare_data_reads_the_files_once_per_object(mnist_dir, monkeypatch):
    """Lightning calls prepare_data in fit and again in test, the CLI once more before the Trainer: one load."""
    loads = []
    load = torchvision.datasets.MNIST._load_data
    monkeypatch.setattr(torchvision.datasets.MNIST, "_load_data",
                        lambda self: (loads.append(self.train), load(self))[1])
    dm = MNIST(data_dir=str(mnist_dir))
    for _ in range(3):
        dm.prepare_data()
    assert loads == [True, False]


def test_train_subset_is_a_seeded_stratified_part_of_the_training_split(request):
    dm, _ = make("fashion_mnist", request, train_subset=30)
    full, _ = make("fashion_mnist", request)
    train = dm.split["train"]
    assert len(train) == 30 and set(train) <= set(full.split["train"])
    assert np.array_equal(dm.split["val"], full.split["val"]) and len(dm.test_set) == 32
    labels = np.asarray(dm.train_set.dataset.targets)[train]
    assert np.bincount(labels, minlength=10).min() >= 2  # stratified: every class kept
    with pytest.raises(ConfigError, match="data.train_subset=0"):
        FashionMNIST(train_subset=0)
