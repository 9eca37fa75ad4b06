"""Run-record reading: statuses, problem texts, pattern expansion, config differences, ablations."""

import json

import pytest
from fabricate import make_ablation, make_run, make_runs_tree

from ttfs_lab.report.figures import pareto_front
from ttfs_lab.report.records import (
    config_differences,
    final_metrics,
    find_runs,
    load_ablation,
    load_run,
)


@pytest.fixture()
def tree(tmp_path):
    return make_runs_tree(tmp_path / "runs")


def test_finished_run_is_read_fully(tree):
    rec = load_run(tree["runs"]["ettfs_twd"])
    assert rec.status == "finished" and rec.problem is None and rec.ok
    assert rec.run_id == "20250101-ettfs_twd" and rec.name == "ettfs + twd" and rec.dataset == "mnist5k"
    assert rec.config["model.init"] == "ettfs" and rec.config["data.init_args.batch_size"] == 64
    assert len(rec.epochs) == 5 and rec.summary["test/acc"] == pytest.approx(0.981)
    assert rec.components["decoder"] == "twd"
    xs, ys = rec.series("val/decision_step")  # first line lacks the key
    assert xs == [1, 2, 3, 4] and len(ys) == 4
    m = final_metrics(rec)
    assert m["test/acc"] == pytest.approx(0.981) and m["violations"] == 0
    assert m["spikes_per_neuron"] == rec.summary["test/spikes_per_neuron_mean"]  # weighted by units, not by layer


def test_run_states(tree):
    runs = tree["runs"]
    running = load_run(runs["running"])
    assert running.status == "running" and running.problem is None and running.summary == {}
    failed = load_run(runs["failed"])
    assert failed.status == "failed" and "loss is NaN" in failed.problem
    inc = load_run(runs["incomplete"])
    assert inc.status == "incomplete" and "summary.json missing" in inc.problem
    assert len(inc.epochs) == 5  # what is there is still read


def test_corrupt_run_keeps_good_metric_lines(tree):
    rec = load_run(tree["runs"]["corrupt"])
    assert rec.status == "corrupt" and not rec.ok
    assert "meta.json unreadable" in rec.problem and "truncated" in rec.problem
    assert len(rec.epochs) == 3 and rec.run_id == "20250104-corrupt"


def test_truncated_last_line_alone_is_only_noted(tmp_path):
    d = make_run(tmp_path, "r", status="running", summary=False, epochs=2)
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "val/a')
    rec = load_run(d)
    assert rec.status == "running" and "last line 3 truncated" in rec.problem and len(rec.epochs) == 2


def test_garbage_in_the_middle_of_metrics_is_corrupt(tmp_path):
    d = make_run(tmp_path, "r", epochs=3)
    lines = (d / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, "%%% not json")
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    rec = load_run(d)
    assert rec.status == "corrupt" and "1 unparsable line(s) (2)" in rec.problem and len(rec.epochs) == 3


@pytest.mark.parametrize(
    "mutate, status, text",
    [
        (lambda d: (d / "meta.json").unlink(), "incomplete", "meta.json missing"),
        (lambda d: (d / "summary.json").unlink(), "incomplete", "summary.json missing"),
        (lambda d: (d / "config.yaml").write_text("model: [unclosed\n  : :"), "corrupt", "config.yaml unreadable"),
        (lambda d: (d / "config.yaml").write_text("- a list\n"), "corrupt", "not a mapping"),
        (lambda d: (d / "summary.json").write_text("[1, 2"), "corrupt", "summary.json unreadable"),
        (lambda d: (d / "meta.json").write_text("[]"), "corrupt", "meta.json is a list"),
        (lambda d: (d / "meta.json").write_text('{"status": "exploded"}'), "corrupt", "unknown status"),
        (lambda d: (d / "meta.json").write_bytes(b"\xff\xfe\x00garbage"), "corrupt", "meta.json unreadable"),
    ],
)
def test_bad_content_never_raises(tmp_path, mutate, status, text):
    d = make_run(tmp_path, "r")
    mutate(d)
    rec = load_run(d)
    assert rec.status == status and text in rec.problem


def test_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert load_run(tmp_path / "empty").status == "corrupt"
    assert "not a run directory" in load_run(tmp_path / "empty").problem
    assert load_run(tmp_path / "file.txt").problem == "not a directory"
    assert load_run(tmp_path / "nope").problem == "does not exist"


def test_find_runs_expansion(tree, tmp_path, monkeypatch):
    root = tree["root"]
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    all_runs = sorted(p.name for p in tree["runs"].values())
    # a parent folder expands to its runs, skipping ablations/
    assert names(find_runs([root])) == all_runs
    # globs, duplicates and explicit run dirs are merged and de-duplicated
    got = find_runs([str(root / "2025010[12]-*"), str(root / "20250101-ettfs_twd"), str(root)])
    assert names(got) == all_runs
    assert names(find_runs([str(root / "*kaiming*")])) == ["20250101-kaiming_twd"]
    # relative patterns work from the current directory
    monkeypatch.chdir(tmp_path)
    assert names(find_runs(["runs/*-failed", "runs/20250103-incomplete"])) == ["20250102-failed", "20250103-incomplete"]
    # an explicit non-run path is kept (load_run reports it); a glob that matches nothing is not
    (tmp_path / "notarun").mkdir()
    assert names(find_runs(["notarun", "missing", "nothing*"])) == ["missing", "notarun"]
    # the ablations folder and its studies are never runs
    assert find_runs([str(root / "ablations"), str(root / "ablations" / "*")]) == []


def test_config_differences(tree):
    recs = [load_run(p) for p in tree["runs"].values()]
    assert config_differences(recs) == ["model.decoder", "model.init", "model.lr"]
    assert config_differences(recs, ignore=["model.lr"]) == ["model.decoder", "model.init"]
    assert config_differences(recs[:1]) == []
    # a key present in one config only differs; lists compare by value
    a, b = recs[0], recs[1]
    b.config = dict(a.config, extra=[1, 2])
    assert config_differences([a, b]) == ["extra"]
    a.config = dict(a.config, extra=[1, 2])
    assert config_differences([a, b]) == []


def test_load_ablation(tree, tmp_path):
    t = load_ablation(tree["ablation"])
    assert t["study"] == "components" and t["dataset"] == "mnist5k" and t["problem"] is None
    assert [r["row"] for r in t["rows"]][:2] == ["baseline", "+ettfs_init"]
    assert load_ablation(tree["ablation"].parent)["rows"] == t["rows"]  # the study folder works too
    bad = make_ablation(tmp_path, "bad")
    bad.write_text("{oops")
    assert load_ablation(bad)["rows"] == [] and "unreadable" in load_ablation(bad)["problem"]
    bad.write_text(json.dumps({"dataset": "x", "rows": [{"row": "a"}, 3]}))
    assert load_ablation(bad)["problem"] == "1 malformed row(s) dropped"
    assert load_ablation(tmp_path / "none")["problem"] == "table.json missing"


def test_pareto_front():
    # (accuracy, decision step): maximize accuracy, minimize step
    pts = [(0.90, 2.0), (0.95, 3.0), (0.93, 3.5), (0.97, 5.0), (0.97, 6.0), (0.85, 2.0), (0.99, 8.0)]
    assert pareto_front(pts) == [0, 1, 3, 6]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0)]) == [0]
    assert pareto_front([(0.9, 2.0), (0.9, 2.0)]) == [0, 1]  # exact ties both stay
    assert pareto_front([(float("nan"), 1.0), (0.8, None), (0.7, 3.0)]) == [2]
    assert pareto_front([(0.9, 3.0), (0.95, 1.0)]) == [1]  # the better-and-faster point dominates
