"""The one DVS Gesture fabricator (``ttfs_lab.data.fabricate``): tonic's layout, both event patterns."""

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
