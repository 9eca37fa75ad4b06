"""Fixtures for the DataModule tests: fabricated on-disk datasets, no network, and a one-step Trainer run."""

from __future__ import annotations

import urllib.error
import urllib.request

import lightning as L
import pytest
import torch
from fabricate_data import (accept_small_tonic_trees, make_cifar, make_cifar10dvs, make_dvsgesture, make_mnist_idx,
                            make_nmnist, skip_cifar_md5)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Safety net: torchvision's and tonic's downloaders both call urllib.request.urlopen; make it fail offline."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def mnist_dir(tmp_path):
    make_mnist_idx(tmp_path, n_train=64, n_test=32, name="MNIST")
    return tmp_path


@pytest.fixture
def fashion_dir(tmp_path):
    make_mnist_idx(tmp_path, n_train=64, n_test=32, name="FashionMNIST")
    return tmp_path


@pytest.fixture
def cifar10_dir(tmp_path, monkeypatch):
    make_cifar(tmp_path, n_train=50, n_test=20, classes=10)
    skip_cifar_md5(monkeypatch)
    return tmp_path


@pytest.fixture
def cifar100_dir(tmp_path, monkeypatch):
    make_cifar(tmp_path, n_train=200, n_test=40, classes=100)
    skip_cifar_md5(monkeypatch)
    return tmp_path


@pytest.fixture
def dvs_dir(tmp_path):
    """A fresh fabricated DVS Gesture tree (100 recordings per split) that a test may damage."""
    make_dvsgesture(tmp_path / "data", n_per_split=100, events=300)
    return tmp_path / "data"


@pytest.fixture
def nmnist_dir(tmp_path, monkeypatch):
    """A small fabricated N-MNIST tree (30 recordings per split; tonic's file count relaxed) a test may damage."""
    make_nmnist(tmp_path / "data", n_per_split=30, events=60)
    accept_small_tonic_trees(monkeypatch)
    return tmp_path / "data"


@pytest.fixture
def cifar10dvs_dir(tmp_path, monkeypatch):
    """A small fabricated CIFAR10-DVS tree (10 recordings per class; tonic's file count relaxed)."""
    make_cifar10dvs(tmp_path / "data", n_per_class=10, events=200)
    accept_small_tonic_trees(monkeypatch)
    return tmp_path / "data"


class TinyClassifier(L.LightningModule):
    """A linear layer over the flattened input: a stand-in for the TTFS model in DataModule smoke tests."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, batch_size=len(y))
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def one_step():
    """Run one training step and one test step of a TinyClassifier on a DataModule.

    Returns (weights before, weights after, test metrics); the model is sized from the DataModule's
    `input_shape`, `frames` and `num_classes`, so a wrong declared shape fails the step.
    """

    def run(dm):
        c, h, w = dm.input_shape
        model = TinyClassifier(c * h * w * (dm.frames or 1), dm.num_classes)
        before = model.linear.weight.detach().clone()
        trainer = L.Trainer(
            max_steps=1, limit_val_batches=1, limit_test_batches=1, logger=False, enable_checkpointing=False,
            accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=dm)
        assert trainer.global_step == 1
        metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
        return before, model.linear.weight.detach(), metrics

    return run
