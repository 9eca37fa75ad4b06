"""The bench's ``ttfs-lab fit`` throughput: one shortened epoch on Fashion-MNIST files fabricated in the IDX layout
(offline), its phases timed apart, the full-epoch projection, and the reason when the data is absent."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fabricate_data import make_mnist_idx  # noqa: E402

from ttfs_lab.bench.fit import FULL_TRAIN, VAL_FRACTION, bench_fit  # noqa: E402


def test_fit_throughput_times_training_and_validation_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    make_mnist_idx(tmp_path, n_train=1500, n_test=64, name="FashionMNIST")
    fit = bench_fit(str(tmp_path), train_batches=3, val_batches=2, workers=0)
    assert (fit["train_samples"], fit["val_samples"]) == (3 * 64, 2 * 64)  # sanity checks not counted
    assert fit["train_s"] > 0 and fit["val_s"] > 0
    assert fit["train_samples_per_s"] == pytest.approx(fit["train_samples"] / fit["train_s"])
    assert fit["val_samples_per_s"] == pytest.approx(fit["val_samples"] / fit["val_s"])
    val = FULL_TRAIN * VAL_FRACTION
    expected = (FULL_TRAIN - val) / fit["train_samples_per_s"] + val / fit["val_samples_per_s"]
    assert fit["full_epoch_s"] == pytest.approx(expected)
    assert fit["epoch_samples_per_s"] < fit["train_samples_per_s"]  # validation costs time
    assert not (tmp_path / "runs").exists()  # the run lived in a temporary folder


def test_fit_throughput_says_why_without_the_data(tmp_path):
    fit = bench_fit(str(tmp_path), train_batches=3, val_batches=2, workers=0)
    assert set(fit) == {"error"} and "apt-get install dataset-fashion-mnist" in fit["error"]
