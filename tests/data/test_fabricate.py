"""The one event-data fabricator (``ttfs_lab.data.fabricate``): DVS Gesture's layout and both its event patterns,
N-MNIST's 40-bit .bin records and CIFAR10-DVS's AEDAT 4 files, each read back through tonic's own readers."""

import numpy as np
import pytest

from ttfs_lab.data.fabricate import dvs_files, make_dvsgesture


@pytest.mark.parametrize("pattern", ["still", "gesture"])
def test_both_patterns_write_the_layout_tonic_reads(tmp_path, pattern):
    base = make_dvsgesture(tmp_path, n_per_split=100, events=500, pattern=pattern)
    assert base == tmp_path / "DVSGesture"
    assert (base / "ibmGestureTrain.tar.gz").is_file() and (base / "ibmGestureTest.tar.gz").is_file()
    for split in ("train", "test"):
        files = dvs_files(tmp_path, split)
        assert len(files) == 100  # tonic downloads when a split has fewer
        assert {f.stem for f in files} == {str(label) for label in range(11)}
    events = np.load(dvs_files(tmp_path)[0])
    assert events.shape == (500, 4) and events.dtype == np.int64
    x, y, p, t = events.T
    assert x.min() >= 0 and x.max() <= 127 and y.min() >= 0 and y.max() <= 127 and set(p) <= {0, 1}
    assert (np.diff(t) >= 0).all()


def test_the_gesture_pattern_spans_six_seconds_and_moves():
    from ttfs_lab.data.fabricate import gesture_events

    events = gesture_events(3, 20000, np.random.default_rng(0))
    t = events[:, 3]
    assert 0 <= t.min() < 100 and 5900 < t.max() < 6000
    start, middle = events[t < 300], events[(t >= 2850) & (t < 3150)]  # label 3: half a circle apart
    assert np.linalg.norm(np.median(start[:, :2], 0) - np.median(middle[:, :2], 0)) > 30  # the blob has moved


def test_unknown_pattern_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="still.*gesture|gesture.*still"):
        make_dvsgesture(tmp_path, pattern="wave")


def test_nmnist_records_are_what_tonics_reader_decodes(tmp_path):
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    from ttfs_lab.data.fabricate import nmnist_records

    x, y, p, t = [0, 33, 7, 255], [0, 33, 12, 1], [1, 0, 1, 0], [0, 1, 65536 + 258, 2**23 - 1]  # every bit used
    data = nmnist_records(x, y, p, t)
    assert len(data) == 4 * 5 and data[10:15] == bytes([7, 12, 0x80 | 1, 1, 2])  # x, y, p|t[22:16], t[15:8], t[7:0]
    (tmp_path / "e.bin").write_bytes(data)
    events = read_mnist_file(str(tmp_path / "e.bin"), dtype=NMNIST.dtype)
    assert events["x"].tolist() == x and events["y"].tolist() == y
    assert events["p"].tolist() == p and events["t"].tolist() == t
    with pytest.raises(ValueError, match="2\\*\\*23"):
        nmnist_records([0], [0], [0], [2**23])


def test_the_nmnist_tree_passes_tonics_check_and_folders_give_the_labels(tmp_path, monkeypatch):
    import tonic.dataset
    from tonic.datasets import NMNIST

    from ttfs_lab.data.fabricate import make_nmnist, nmnist_files

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", lambda *a, **k: pytest.fail("download"))
    base = make_nmnist(tmp_path)  # 10,000 per split: tonic's own minimum
    assert (base / "train.zip").is_file() and (base / "test.zip").is_file()
    for train, split in ((True, "train"), (False, "test")):
        dataset = NMNIST(save_to=str(tmp_path), train=train)
        assert len(dataset) == len(nmnist_files(tmp_path, split)) == 10000
        assert sorted(set(dataset.targets)) == list(range(10))
    events, label = dataset[4321]
    assert label == int(dataset.data[4321].split("/")[-2]) and len(events) == 60
    assert events["x"].min() >= 2 + 3 * label - 1 and events["x"].max() <= 2 + 3 * label + 1


def test_aedat4_files_are_what_tonics_reader_decodes(tmp_path):
    import aedat
    from tonic.io import read_aedat4

    from ttfs_lab.data.fabricate import aedat4_bytes

    t = np.array([1_490_000_000_000_000, 1_490_000_000_000_005, 1_490_000_000_001_000], dtype=np.int64)
    x, y, on = np.array([0, 127, 64]), np.array([127, 0, 3]), np.array([True, False, True])
    (tmp_path / "r.aedat4").write_bytes(aedat4_bytes(t, x, y, on, packets=2))
    decoder = aedat.Decoder(str(tmp_path / "r.aedat4"))
    assert decoder.id_to_stream() == {0: {"type": "events", "width": 128, "height": 128}}
    assert [len(packet["events"]) for packet in decoder] == [2, 1]
    events = read_aedat4(str(tmp_path / "r.aedat4"))
    assert events["t"].tolist() == t.tolist() and events["x"].tolist() == x.tolist()
    assert events["y"].tolist() == y.tolist() and events["on"].tolist() == on.tolist()


def test_the_cifar10dvs_tree_passes_tonics_check_and_folders_give_the_labels(tmp_path, monkeypatch):
    import tonic.dataset
    from tonic.datasets import CIFAR10DVS

    from ttfs_lab.data.fabricate import CIFAR10DVS_CLASSES, cifar10dvs_files, make_cifar10dvs

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", lambda *a, **k: pytest.fail("download"))
    base = make_cifar10dvs(tmp_path)  # 100 per class: tonic's own minimum of 1,000
    assert (base / "CIFAR10DVS.zip").is_file() and CIFAR10DVS_CLASSES == tuple(CIFAR10DVS.classes)
    dataset = CIFAR10DVS(save_to=str(tmp_path))
    assert len(dataset) == len(cifar10dvs_files(tmp_path)) == 1000
    index = dataset.data.index(str(base / "ship" / "cifar10_ship_7.aedat4"))
    events, label = dataset[index]
    assert label == 8 and len(events) == 200 and events.dtype.names == ("t", "x", "y", "p")
    assert abs(np.median(events["x"]) - (8 + 12 * 8)) <= 2 and (np.diff(events["t"].astype(np.int64)) >= 0).all()
