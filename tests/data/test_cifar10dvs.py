"""CIFAR10-DVS: tonic's .aedat4 recordings framed into T bins, one cache, a fixed per-class test split, one-line
errors naming files."""

from __future__ import annotations

import importlib.util
import os
import urllib.error

import numpy as np
import pytest
import tonic.dataset
import torch
from cli_run import error_line, fit_event_config, fit_offline
from fabricate_data import cifar10dvs_files, make_cifar10dvs

import ttfs_lab.data.events as events
from ttfs_lab.data import CIFAR10DVS
from ttfs_lab.errors import ConfigError, DataError


def make(data_dir, **kwargs) -> CIFAR10DVS:
    return CIFAR10DVS(data_dir=str(data_dir), batch_size=8, **kwargs)


@pytest.fixture(scope="module")
def full_cifar10dvs(tmp_path_factory):
    """A full-size fabricated tree (100 recordings per class: tonic's own check passes, nothing relaxed)."""
    root = tmp_path_factory.mktemp("cifar10dvs")
    make_cifar10dvs(root)
    return root


@pytest.fixture
def frame_calls(monkeypatch):
    calls = []
    original = events.events_to_frames

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(events, "events_to_frames", counting)
    return calls


def test_batches_are_event_frames_with_class_labels(cifar10dvs_dir):
    dm = make(cifar10dvs_dir)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 10, 2, 64, 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < 10


def test_test_split_is_the_last_tenth_of_each_class_by_file_name_for_every_seed(cifar10dvs_dir):
    dm, other = make(cifar10dvs_dir), make(cifar10dvs_dir, seed=1)
    for d in (dm, other):
        d.setup("fit"), d.setup("test")
    train, val, test = dm.split["train"], dm.split["val"], dm.test_set.indices
    assert len(test) == 10 and len(train) + len(val) == 90 and len(val) == 9
    assert not set(test) & (set(train) | set(val)) and set(train).isdisjoint(val)
    assert other.test_set.indices == test and not np.array_equal(other.split["val"], val)
    files = cifar10dvs_files(cifar10dvs_dir)  # the cache is in path order: airplane/... first
    held_out = [files[i] for i in test]
    for label, name in enumerate(tonic.datasets.CIFAR10DVS.classes):
        mine = sorted(p for p in files if p.parent.name == name)
        assert [p for p in held_out if p.parent.name == name] == mine[-1:]
        assert [dm.test_set[i][1] for i, p in enumerate(held_out) if p.parent.name == name] == [label]


def test_frames_show_each_recordings_class_from_its_folder(cifar10dvs_dir):
    dm = make(cifar10dvs_dir, denoise_us=None)
    dm.setup("test")
    for i in range(len(dm.test_set)):
        frames, label = dm.test_set[i]
        # fabricated recordings are blobs at x = 8 + 12 * label (native pixels); at 64x64 that is column // 2
        columns = frames.sum(dim=(0, 1, 2)).nonzero().flatten().float()
        assert abs(columns.mean().item() - (8 + 12 * label) / 2) <= 1.5


def test_one_cache_holds_every_recording_and_is_built_once(cifar10dvs_dir, frame_calls):
    dm = make(cifar10dvs_dir)
    dm.prepare_data()
    assert dm.cache_path("all").endswith(os.path.join("cifar10dvs", "T10_s64_dn10000_bin", "all"))
    assert len(frame_calls) == 100
    make(cifar10dvs_dir, test_fraction=0.2, seed=3).setup()  # another split of the same cache: nothing new
    assert len(frame_calls) == 100
    make(cifar10dvs_dir, frames=5).setup("test")
    assert len(frame_calls) == 200


@pytest.mark.parametrize("damage, words", [
    ("truncated", "is empty or corrupt (failed to fill whole buffer)"),
    ("empty", "is empty or corrupt"),
    ("garbage", "is empty or corrupt"),
    ("no_packets", "is empty or corrupt (need at least one array to concatenate)"),
    ("outside", "is corrupt (events outside the 128x128 sensor"),
])
def test_bad_aedat4_file_raises_one_line_naming_it_and_leaves_no_cache(cifar10dvs_dir, damage, words):
    from ttfs_lab.data.fabricate import aedat4_bytes

    bad = cifar10dvs_files(cifar10dvs_dir)[13]
    data = bad.read_bytes()
    n = 200
    payloads = {
        "truncated": data[:-100],  # inside the last event packet
        "empty": b"",
        "garbage": b"#!AER-DAT4.0\r\n" + bytes(range(256)) * 4,
        "no_packets": aedat4_bytes(*[np.zeros(0, dtype=np.int64)] * 4),
        "outside": aedat4_bytes(np.arange(n), np.full(n, 300), np.full(n, 5), np.ones(n, dtype=bool)),
    }
    bad.write_bytes(payloads[damage])
    dm = make(cifar10dvs_dir)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"event file {bad} {words}" in message and "\n" not in message
    assert "re-download CIFAR10-DVS" in message
    assert not os.path.exists(dm.cache_path("all"))
    assert not [p for p in os.listdir(os.path.dirname(dm.cache_path("all"))) if "tmp" in p]


def test_a_test_fraction_that_leaves_a_class_without_test_recordings_is_refused(cifar10dvs_dir):
    with pytest.raises(ConfigError, match=r"data.test_fraction=0.01 leaves 0 of the 10 recordings of class 0"):
        make(cifar10dvs_dir, test_fraction=0.01).setup("test")


def test_missing_folder_and_failed_download_raise_one_line_naming_it(tmp_path, monkeypatch):
    def network_down(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", network_down)
    with pytest.raises(DataError) as info:
        make(tmp_path / "data").setup("test")
    message = str(info.value)
    assert f"could not download CIFAR10-DVS into {tmp_path / 'data' / 'CIFAR10DVS'}" in message
    assert "Temporary failure in name resolution" in message
    assert "CIFAR10DVS.zip and its extracted <class>/*.aedat4 folders" in message and "\n" not in message


def test_without_the_aedat_reader_the_error_says_what_to_install(cifar10dvs_dir, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aedat" else find_spec(name, *a))
    with pytest.raises(DataError, match="needs the aedat package .*pip install aedat"):
        make(cifar10dvs_dir).prepare_data()


def test_the_full_size_tree_passes_tonics_own_check(full_cifar10dvs, tmp_path):
    dm = make(full_cifar10dvs, frames=2, size=16, cache_dir=str(tmp_path / "cache"))
    dm.setup("test")  # urlopen refuses (conftest): a download attempt would fail here
    assert len(dm.test_set) == 100 and sorted(dm.test_set[i][1] for i in range(100)) == sorted(list(range(10)) * 10)


def test_one_training_and_one_test_step(cifar10dvs_dir, one_step):
    before, after, metrics = one_step(make(cifar10dvs_dir, frames=4, size=16))
    assert not torch.equal(before, after)
    assert "test/acc" in metrics


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_bad_file_stops_ttfs_lab_fit_with_one_line_naming_it(full_cifar10dvs, tmp_path, damage):
    bad = cifar10dvs_files(full_cifar10dvs)[0]  # the first file read: the run fails at once
    original = bad.read_bytes()
    bad.write_bytes(original[:-50] if damage == "truncated" else original[:14] + b"\xff" * 200)
    try:
        line = error_line(*fit_offline(fit_event_config(tmp_path, "ttfs_lab.data.CIFAR10DVS", full_cifar10dvs,
                                                         cache_dir=str(tmp_path / "cache")))[::2])
    finally:
        bad.write_bytes(original)
    assert line.startswith(f"error: event file {bad} is empty or corrupt (")
