"""ttfs_lab/record/files.py: atomic writes, tolerant reads of meta / metrics lines, the one config flattener."""

import json
import os

import pytest

from ttfs_lab.record import flatten, read_json, read_metrics, write_json, write_jsonl, write_text


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_write_that_dies_midway_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "r" / "meta.json"
    write_json(path, {"status": "running"})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, crash)  # after the new text is written, before it replaces the old file
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"status": "finished", "padding": "x" * 100_000})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"status": "running"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["meta.json"]


def test_write_text_creates_folders_and_replaces_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "config.yaml"
    write_text(path, "long text\n" * 10)
    write_text(path, "short\n")
    assert path.read_text() == "short\n"


def test_a_truncated_last_metrics_line_is_skipped_and_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_jsonl(path, [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": 0.6}])
    with open(path, "a") as f:
        f.write('{"epoch": 2, "val/a')  # a crash in the middle of a write
    rows, problem, severe = read_metrics(path)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert problem == "metrics.jsonl: last line 3 truncated (kept 2 epochs)" and not severe


def test_garbage_inside_metrics_is_severe_and_non_objects_are_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 0}\n[1, 2]\n%%%\n{"epoch": 1}\n')
    rows, problem, severe = read_metrics(path)
    assert rows == [{"epoch": 0}, {"epoch": 1}] and severe and "2 unparsable line(s) (2, 3)" in problem
    assert read_metrics(tmp_path / "none.jsonl") == ([], None, False)  # no epochs yet is no problem


def test_tensors_are_written_as_numbers_and_lists(tmp_path):
    torch = pytest.importorskip("torch")
    write_json(tmp_path / "s.json", {"a": torch.tensor(0.5), "b": torch.tensor([1, 2])})
    assert read_json(tmp_path / "s.json") == ({"a": 0.5, "b": [1, 2]}, None)


def test_read_json_reports_instead_of_raising(tmp_path):
    (tmp_path / "meta.json").write_bytes(b"\xff\xfe garbage")
    value, problem = read_json(tmp_path / "meta.json")
    assert value is None and problem.startswith("meta.json unreadable (UnicodeDecodeError")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}) == {
        "a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None
    }
