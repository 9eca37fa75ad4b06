"""N-MNIST: tonic's 40-bit .bin records framed into T bins, cached once per setting, one-line errors naming files."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error

import pytest
import tonic.dataset
import torch
from cli_run import CONFIGS, error_line, fit_event_config, fit_offline
from fabricate_data import make_nmnist, nmnist_files

import ttfs_lab.data.events as events
from ttfs_lab.config import TTFSLabCLI
from ttfs_lab.data import NMNIST
from ttfs_lab.errors import DataError
from ttfs_lab.train import train


def make(data_dir, **kwargs) -> NMNIST:
    return NMNIST(data_dir=str(data_dir), batch_size=8, **kwargs)


@pytest.fixture(scope="module")
def full_nmnist(tmp_path_factory):
    """A full-size fabricated tree (10,000 recordings per split: tonic's own check passes, nothing relaxed)."""
    root = tmp_path_factory.mktemp("nmnist")
    make_nmnist(root)
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


def test_batches_are_34x34_event_frames_with_digit_labels(nmnist_dir):
    dm = make(nmnist_dir)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 8, 2, 34, 34) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < 10
    assert len(dm.split["train"]) + len(dm.split["val"]) == 30 and len(dm.split["val"]) == 3


def test_frames_show_each_recordings_digit_from_its_folder(nmnist_dir):
    dm = make(nmnist_dir, denoise_us=None)
    dm.setup("test")
    assert len(dm.test_set) == 30
    for i in (0, 7, 29):
        frames, label = dm.test_set[i]
        # fabricated digits are 3x3 blobs at x = 2 + 3 * label; the label comes from the folder <digit>/
        columns = frames.sum(dim=(0, 1, 2)).nonzero().flatten().float()
        assert abs(columns.mean().item() - (2 + 3 * label)) <= 1.0


def test_cache_is_keyed_by_every_parameter_and_built_once(nmnist_dir, frame_calls):
    dm = make(nmnist_dir)
    dm.prepare_data()
    assert dm.cache_path("train").endswith(os.path.join("nmnist", "T8_s34_dn10000_bin", "train"))
    assert len(frame_calls) == 60
    with open(os.path.join(dm.cache_path("test"), "params.json")) as f:
        assert json.load(f)["params"] == dm.params
    shutil.rmtree(nmnist_dir / "NMNIST")  # the cache alone suffices now
    again = make(nmnist_dir)
    again.setup("fit"), again.setup("test")
    assert len(frame_calls) == 60
    smaller = make(nmnist_dir, size=17, frames=4)
    assert smaller.cache_path("test") != dm.cache_path("test")
    with pytest.raises(DataError, match="could not download N-MNIST"):  # a new setting needs the raw files
        smaller.setup("test")


def test_downsampled_frames_keep_the_events(nmnist_dir):
    dm = make(nmnist_dir, size=17, frames=4, denoise_us=None, binary=False)
    dm.setup("test")
    frames, _ = dm.test_set[0]
    assert frames.shape == (4, 2, 17, 17)
    # every fabricated event is counted but the last: tonic's time bins are half-open and end at the last event
    assert frames.sum() == 59


@pytest.mark.parametrize("damage, words", [
    ("truncated", "is truncated (298 bytes, not a whole number of 5-byte event records)"),
    ("empty", "holds no events"),
    ("corrupt", "is corrupt (events outside the 34x34 sensor"),
])
def test_bad_bin_file_raises_one_line_naming_it_and_leaves_no_cache(nmnist_dir, damage, words):
    bad = nmnist_files(nmnist_dir, "train")[5]
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:-2])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_bytes(bytes([200, 100, 0, 0, 1]) * 20)  # x = 200, y = 100: no 34x34 sensor sends that
    dm = make(nmnist_dir)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"event file {bad} {words}" in message and "\n" not in message
    assert "re-download N-MNIST" in message
    assert not os.path.exists(dm.cache_path("train"))
    assert not [p for p in os.listdir(os.path.dirname(dm.cache_path("train"))) if "tmp" in p]


def test_missing_folder_and_failed_download_raise_one_line_naming_it(tmp_path, monkeypatch):
    def network_down(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", network_down)
    with pytest.raises(DataError) as info:
        make(tmp_path / "data").setup("fit")
    message = str(info.value)
    assert f"could not download N-MNIST into {tmp_path / 'data' / 'NMNIST'}" in message
    assert "Temporary failure in name resolution" in message
    assert "train.zip and its extracted Train/<digit>/*.bin files" in message and "\n" not in message


def test_a_partly_extracted_split_is_missing_for_tonic(full_nmnist, tmp_path):
    """tonic wants 10,000 .bin files per split: with one fewer it downloads (which fails offline)."""
    moved = nmnist_files(full_nmnist, "test")[0]
    os.rename(moved, tmp_path / "aside.bin")
    try:
        with pytest.raises(DataError, match=f"could not download N-MNIST into {full_nmnist / 'NMNIST'}"):
            make(full_nmnist, cache_dir=str(tmp_path / "cache")).setup("test")
    finally:
        os.rename(tmp_path / "aside.bin", moved)
    assert len(nmnist_files(full_nmnist, "test")) == 10000


def test_one_training_and_one_test_step(nmnist_dir, one_step):
    before, after, metrics = one_step(make(nmnist_dir, frames=4))
    assert not torch.equal(before, after)
    assert "test/acc" in metrics


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_bad_file_stops_ttfs_lab_fit_with_one_line_naming_it(full_nmnist, tmp_path, damage):
    bad = nmnist_files(full_nmnist, "train")[0]  # the first file read: the run fails at once
    original = bad.read_bytes()
    bad.write_bytes(original[:-3] if damage == "truncated" else bytes([255, 7, 0, 0, 9]) * 12)
    try:
        line = error_line(*fit_offline(fit_event_config(tmp_path, "ttfs_lab.data.NMNIST", full_nmnist))[::2])
    finally:
        bad.write_bytes(original)
    assert line.startswith(f"error: event file {bad} is {damage}")


def test_a_truncated_file_is_the_only_line_ttfs_lab_fit_prints_on_stderr(full_nmnist, tmp_path):
    """`ttfs-lab fit --config configs/nmnist.yaml` (`make train DATASET=nmnist`): the data is prepared before the
    Trainer is built, so Lightning's start-up lines ("GPU available: ...") never precede the error."""
    bad = nmnist_files(full_nmnist, "train")[0]  # the first file read
    original = bad.read_bytes()
    bad.write_bytes(original[:-3])
    try:
        status, _, stderr = fit_offline(str(CONFIGS / "nmnist.yaml"), "--data.init_args.data_dir", str(full_nmnist),
                                        "--run.dir", str(tmp_path / "runs"), "--run.wandb", "disabled", cwd=tmp_path)
    finally:
        bad.write_bytes(original)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr[-2000:]
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith(f"error: event file {bad} is truncated"), stderr[-2000:]
    assert not (tmp_path / "runs").exists()  # no run record for a run that could not start


def test_fit_prepares_the_data_before_the_trainer_and_frames_each_recording_once(nmnist_dir, tmp_path, frame_calls,
                                                                                 monkeypatch):
    """The CLI's early prepare_data, then Lightning's in fit and in test: the second and third find the cache."""
    order = []
    prepare, build = NMNIST.prepare_data, TTFSLabCLI._instantiate_trainer  # the latter builds the Trainer
    monkeypatch.setattr(NMNIST, "prepare_data", lambda self: (order.append("prepare"), prepare(self))[1])
    monkeypatch.setattr(TTFSLabCLI, "_instantiate_trainer",
                        lambda self, *a: (order.append("trainer"), build(self, *a))[1])
    summary = train(["--config", fit_event_config(tmp_path, "ttfs_lab.data.NMNIST", nmnist_dir)])
    assert "test/acc" in summary
    assert order == ["prepare", "trainer", "prepare", "prepare"]
    assert len(frame_calls) == 60  # 30 training + 30 test recordings, each framed once
