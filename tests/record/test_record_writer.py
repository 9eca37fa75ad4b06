"""ttfs_lab/record/writer.py: status changes, epochs after a crash and a resume, rank zero only, and that what
the writer writes the reader reads back as a healthy record."""

import json

import pytest

from ttfs_lab.record import RunRecord, load_run


def meta(record):
    return json.loads((record.path / "meta.json").read_text())


def test_epochs_survive_a_cut_line_and_a_rerun_epoch_replaces_its_row(tmp_path):
    record = RunRecord(tmp_path / "r")
    record.append_epoch({"epoch": 0, "val/acc": 0.5})
    record.append_epoch({"epoch": 1, "val/acc": 0.6})
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "val/a')  # a crash in the middle of a write
    assert [r["epoch"] for r in record.epochs()] == [0, 1]
    record.truncate_epochs(1)
    record.append_epoch({"epoch": 1, "val/acc": 0.7})
    assert record.epochs() == [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": 0.7}]


def test_status_goes_running_then_finished_with_its_summary(tmp_path):
    record = RunRecord(tmp_path / "r")
    record.start(run_id="r", stage="fit", started="2025-01-01T00:00:00+00:00")
    assert meta(record)["status"] == "running" and record.finished_summary() is None
    record.stop("failed", "loss became nan\n  at step 3")
    assert meta(record)["status"] == "failed" and meta(record)["error"] == "loss became nan"
    record.start(run_id="r", stage="fit")  # a resume keeps the start time, clears the error
    assert meta(record)["started"] == "2025-01-01T00:00:00+00:00" and meta(record)["error"] is None
    record.finish({"test/acc": 0.9})
    assert meta(record)["status"] == "finished" and meta(record)["ended"]
    assert record.finished_summary() == {"test/acc": 0.9} and record.stage == "fit"


def test_only_the_known_statuses_can_be_written(tmp_path):
    record = RunRecord(tmp_path / "r")
    with pytest.raises(ValueError, match="stop status 'finished'"):
        record.stop("finished", "x")
    with pytest.raises(ValueError, match="run status 'exploded'"):
        record._write_meta(status="exploded")
    assert not (tmp_path / "r" / "meta.json").exists()


def test_fail_if_running_changes_only_a_running_record(tmp_path):
    record = RunRecord(tmp_path / "r")
    assert not record.fail_if_running("worker died") and not record.path.exists()  # no record: nothing written
    record.start(run_id="r")
    assert record.fail_if_running("worker died") and meta(record)["error"] == "worker died"
    record.finish({})
    assert not record.fail_if_running("late") and meta(record)["status"] == "finished"


def test_processes_other_than_rank_zero_write_nothing(tmp_path, monkeypatch):
    from lightning_utilities.core.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    record = RunRecord(tmp_path / "r")
    record.start(run_id="r")
    record.append_epoch({"epoch": 0})
    record.finish({"test/acc": 1.0})
    assert not record.path.exists()


def test_what_the_writer_writes_the_reader_reads_as_a_healthy_record(tmp_path):
    record = RunRecord(tmp_path / "r1")
    record.start(run_id="r1", name="first", dataset="mnist5k", stage="fit", components={"init": "ettfs"})
    record.write_config("model:\n  T: 4\n")
    record.append_epoch({"epoch": 0, "val/acc": 0.5})
    record.finish({"test/acc": 0.9})
    snap = load_run(record.path)
    assert snap.ok and snap.status == "finished" and snap.problem is None
    assert snap.name == "first" and snap.config == {"model.T": 4} and snap.summary == {"test/acc": 0.9}
    assert snap.epochs == record.epochs() and snap.components == {"init": "ettfs"}
