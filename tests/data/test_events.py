"""The event-data part DVS Gesture, N-MNIST and CIFAR10-DVS share: framing on any sensor, event checks, the
recording order, and a frame cache that concurrent processes build once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from fabricate_data import make_dvsgesture

import tonic

from ttfs_lab.data.events import check_events, denoise, events_to_frames, sort_recordings
from ttfs_lab.errors import DataError

DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def structured(rows) -> np.ndarray:
    return np.array([tuple(r) for r in rows], dtype=DTYPE)


def test_frames_bin_time_and_downsample_on_the_sensors_own_size():
    # x, y, t[us], p on a 34 x 34 sensor; 4 bins of 25 us over t in [0, 100]
    events = structured([(0, 0, 0, 1), (33, 33, 30, 0), (33, 33, 40, 0), (10, 20, 60, 1), (5, 5, 100, 1)])
    counts = events_to_frames(events, frames=4, size=34, denoise_us=None, binary=False, native=34)
    assert counts.shape == (4, 2, 34, 34) and counts.dtype == np.uint8
    assert counts[0, 1, 0, 0] == 1 and counts[1, 0, 33, 33] == 2 and counts[2, 1, 20, 10] == 1
    assert counts.sum() == 4  # the event at t = 100 ends the last (half-open) bin
    half = events_to_frames(events, frames=4, size=17, denoise_us=None, binary=True, native=34)
    assert half.shape == (4, 2, 17, 17) and half[1, 0, 16, 16] == 1 and half.max() == 1  # 33 * 17/34 -> 16


def test_denoise_drops_isolated_events():
    blob = [(10 + i % 2, 10, 1000 * i, 1) for i in range(20)]  # neighbours every ms
    lonely = [(30, 2, 5500, 1)]
    frames = events_to_frames(structured(blob + lonely), 2, 34, denoise_us=2000, binary=True, native=34)
    assert frames[:, :, 2, 30].sum() == 0 and frames[:, :, 10, 10:12].sum() > 0


@pytest.mark.parametrize("dtype, offset", [
    (DTYPE, 0),  # DVS Gesture / N-MNIST: int64 fields, t from 0
    (np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")]), 1_490_000_000_000_000),  # CIFAR10-DVS
])
def test_denoise_keeps_exactly_the_events_tonics_filter_keeps(dtype, offset):
    rng = np.random.default_rng(1)
    n = 20000
    events = np.zeros(n, dtype=dtype)
    events["x"], events["y"] = rng.integers(0, 60, n), rng.integers(0, 40, n)
    events["t"], events["p"] = np.sort(rng.integers(0, 2_000_000, n)) + offset, rng.integers(0, 2, n)
    for filter_time in (1000, 10000):
        expected = tonic.transforms.Denoise(filter_time=filter_time)(events)
        kept = denoise(events, filter_time)
        assert 0 < len(kept) < n and kept.dtype == events.dtype and np.array_equal(kept, expected)
    assert len(denoise(events[:0], 1000)) == 0


@pytest.mark.parametrize("rows, words", [
    ([], "holds no events"),
    ([(34, 0, 0, 1)], "events outside the 34x34 sensor: x in [34, 34]"),
    ([(-1, 3, 0, 0)], "events outside the 34x34 sensor: x in [-1, -1]"),
    ([(3, 3, 0, 2)], "polarities in [2, 2], not 0 or 1"),
])
def test_impossible_recordings_are_named_in_one_line(rows, words):
    with pytest.raises(DataError) as info:
        check_events(structured(rows), "data/X/r.bin", 34, "fix it")
    assert "event file data/X/r.bin" in str(info.value) and words in str(info.value)
    assert str(info.value).endswith(": fix it")


def test_recordings_are_ordered_by_path_with_their_labels():
    source = SimpleNamespace(data=["b/2.npy", "a/9.npy", "a/1.npy"], targets=[2, 9, 1], users=[5, 6, 7],
                             lighting=["x", "y", "z"])
    sort_recordings(source)
    assert source.data == ["a/1.npy", "a/9.npy", "b/2.npy"] and source.targets == [1, 9, 2]
    assert source.users == [7, 6, 5] and source.lighting == ["z", "y", "x"]


BUILDER = """
import os, sys, time
from ttfs_lab.data import DVSGesture
dm = DVSGesture(data_dir=sys.argv[1], frames=4, size=16)
open(sys.argv[2], "w").close()                      # ready: everything imported
while not os.path.exists(sys.argv[3]):              # start together
    time.sleep(0.01)
dm.prepare_data()
dm.setup("fit")
print("labels", len(dm.train_set) + len(dm.val_set))
"""


def test_processes_that_need_the_same_cache_at_once_build_it_once(tmp_path):
    data = tmp_path / "data"
    make_dvsgesture(data, n_per_split=100, events=300)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(data), str(tmp_path / f"ready{i}"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    printed = "".join(out for out, _ in outs)
    assert printed.count("data: building the DVS Gesture frame cache") == 2, printed  # train and test, once each
    assert printed.count("labels 100") == 2
    setting = data / "cache" / "dvsgesture" / "T4_s16_dn10000_bin"
    assert sorted(p for p in os.listdir(setting) if not p.startswith(".lock")) == ["test", "train"]
