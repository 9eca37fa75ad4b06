"""DVS Gesture: event frames from a fabricated tonic tree, cached once on disk, never stale, clear errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import urllib.error

import numpy as np
import pytest
import tonic.dataset
import torch
from fabricate_data import dvs_files
from tonic.cached_dataset import DiskCachedDataset

import ttfs_lab.data.events as events
from ttfs_lab.data import DVSGesture, measure_loading_throughput
from ttfs_lab.errors import DataError


def make(data_dir, **kwargs) -> DVSGesture:
    return DVSGesture(data_dir=str(data_dir), batch_size=8, **kwargs)


@pytest.fixture
def frame_calls(monkeypatch):
    """Count calls of the frame computation (the expensive step the cache saves)."""
    calls = []
    original = events.events_to_frames

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(events, "events_to_frames", counting)
    return calls


def test_batches_are_binary_event_frames_with_int64_labels(dvs_dir):
    dm = make(dvs_dir)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 16, 2, 64, 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < 11


def test_frames_match_the_recordings_labels(dvs_dir):
    dm = make(dvs_dir, denoise_us=None)
    dm.setup("test")
    for i in (0, 5, 50):
        frames, label = dm.test_set[i]
        # fabricated recordings are blobs at x = 8 + 10 * label (native pixels); at 64x64 that is column // 2
        active_columns = frames.sum(dim=(0, 1, 2)).nonzero().flatten()
        assert abs(active_columns.float().mean().item() - (8 + 10 * label) / 2) <= 1.5


def test_val_split_is_seeded_disjoint_part_of_train(dvs_dir):
    dm = make(dvs_dir)
    dm.setup("fit")
    dm.setup("test")
    train, val = dm.split["train"], dm.split["val"]
    assert len(train) + len(val) == 100 and len(val) == 10 and set(train).isdisjoint(val)
    assert len(dm.test_set) == 100
    again, other = make(dvs_dir), make(dvs_dir, seed=1)
    again.setup("fit"), other.setup("fit")
    assert np.array_equal(again.split["val"], val) and not np.array_equal(other.split["val"], val)


def test_cache_is_built_once_and_reused_without_the_raw_files(dvs_dir, frame_calls):
    first = make(dvs_dir)
    first.prepare_data()
    assert len(frame_calls) == 200  # 100 train + 100 test recordings
    assert os.path.isfile(os.path.join(first.cache_path("train"), "params.json"))
    x_first = first.test_dataloader().dataset[3][0]
    shutil.rmtree(dvs_dir / "DVSGesture")  # the cache alone must suffice now
    second = make(dvs_dir)
    second.prepare_data()
    second.setup("fit")
    second.setup("test")
    assert len(frame_calls) == 200
    assert torch.equal(second.test_set[3][0], x_first)


def test_changing_frames_or_size_uses_a_new_cache_never_stale_frames(dvs_dir, frame_calls):
    base = make(dvs_dir)
    base.setup("test")
    assert base.cache_path("test").endswith(os.path.join("dvsgesture", "T16_s64_dn10000_bin", "test"))
    for kwargs, shape in (({"frames": 8}, (8, 2, 64, 64)), ({"size": 32}, (16, 2, 32, 32))):
        changed = make(dvs_dir, **kwargs)
        assert changed.cache_path("test") != base.cache_path("test")
        calls_before = len(frame_calls)
        changed.setup("test")
        assert len(frame_calls) == calls_before + 100
        assert changed.test_set[0][0].shape == shape
    assert base.test_set[0][0].shape == (16, 2, 64, 64)


def test_cache_with_other_parameters_in_params_json_is_rebuilt(dvs_dir, frame_calls):
    dm = make(dvs_dir)
    dm.setup("test")
    params_file = os.path.join(dm.cache_path("test"), "params.json")
    with open(params_file) as f:
        manifest = json.load(f)
    manifest["params"]["version"] = -1
    with open(params_file, "w") as f:
        json.dump(manifest, f)
    make(dvs_dir).setup("test")
    assert len(frame_calls) == 200
    with open(params_file) as f:
        assert json.load(f)["params"] == dm.params


def test_cache_is_readable_by_tonic_disk_cached_dataset(dvs_dir):
    dm = make(dvs_dir, frames=4, size=32, denoise_us=None)
    dm.setup("test")
    assert "T4_s32_dnoff_bin" in dm.cache_path("test")
    tonic_view = DiskCachedDataset(None, cache_path=dm.cache_path("test"))
    assert len(tonic_view) == 100
    frames, label = tonic_view[7]
    assert frames.dtype == np.uint8 and torch.equal(torch.from_numpy(frames).float(), dm.test_set[7][0])
    assert label == dm.test_set[7][1]


def test_counts_mode_keeps_event_counts(dvs_dir):
    dm = make(dvs_dir, binary=False, size=16)
    dm.setup("test")
    assert "count" in dm.cache_path("test")
    x = torch.stack([dm.test_set[i][0] for i in range(10)])
    assert x.max() > 1 and torch.equal(x, x.round())


@pytest.mark.parametrize("damage", ["empty", "corrupt", "no_events"])
def test_bad_event_file_raises_data_error_naming_it_and_leaves_no_cache(dvs_dir, damage):
    bad = dvs_files(dvs_dir, "train")[17]
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "corrupt":
        bad.write_bytes(b"this is not a numpy file at all" * 10)
    else:
        np.save(bad, np.zeros((0, 4), dtype=np.int64))
    dm = make(dvs_dir)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert str(bad) in message and "\n" not in message
    assert "re-download" in message
    cache_parent = os.path.dirname(dm.cache_path("train"))
    assert not os.path.exists(dm.cache_path("train"))
    assert not [p for p in os.listdir(cache_parent) if "tmp" in p]


def test_missing_folder_and_failed_download_raise_data_error_naming_it(tmp_path, monkeypatch):
    def network_down(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", network_down)
    dm = make(tmp_path / "data")
    with pytest.raises(DataError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert f"could not download DVS Gesture into {tmp_path / 'data' / 'DVSGesture'}" in message
    assert "Temporary failure in name resolution" in message and "ibmGestureTrain.tar.gz" in message
    assert "\n" not in message


def test_loading_throughput_is_measured_over_the_train_loader(dvs_dir, frame_calls):
    rate = measure_loading_throughput(make(dvs_dir), batches=5)
    assert len(frame_calls) == 200  # prepare_data built both caches first
    assert math.isfinite(rate) and rate > 0


def test_one_training_and_one_test_step(dvs_dir, one_step):
    before, after, metrics = one_step(make(dvs_dir, frames=4, size=16))
    assert not torch.equal(before, after)
    assert "test/acc" in metrics
