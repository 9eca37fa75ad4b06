"""ttfs-lab paired: two ablation rows compared seed by seed."""

import json

import pytest
from scipy import stats

from ttfs_lab.cli import main as cli_main
from ttfs_lab.report.paired import compare_rows, paired_t, seed_summaries, steps_to_reach


def write_row(runs, study, key, seeds, accs, steps, curves):
    ids = []
    for seed, acc, step, curve in zip(seeds, accs, steps, curves):
        run = runs / f"{study}-{key}-s{seed}"
        run.mkdir(parents=True)
        (run / "meta.json").write_text(json.dumps({"status": "finished"}))
        (run / "summary.json").write_text(json.dumps(
            {"test/acc": acc, "test/decision_step": step, "test/acc_vs_step": curve}))
        ids.append(run.name)
    return ids


@pytest.fixture
def table(tmp_path):
    runs = tmp_path / "runs"
    a = write_row(runs, "st", "aaaa", [0, 1, 2], [0.86, 0.85, 0.87], [2.5, 2.7, 2.6],
                  [[0.1, 0.84, 0.86], [0.1, 0.85, 0.85], [0.2, 0.87, 0.87]])
    b = write_row(runs, "st", "bbbb", [0, 1, 2, 3], [0.84, 0.845, 0.85, 0.9], [2.6, 2.7, 2.8, 2.0],
                  [[0.1, 0.80, 0.84], [0.1, 0.80, 0.845], [0.1, 0.82, 0.85], [0.9, 0.9, 0.9]])
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"study": "st", "rows": [{"row": "A", "runs": a}, {"row": "-b", "runs": b}]}))
    return path, runs


def test_paired_t_matches_scipy():
    a, b = [1.0, 2.5, 3.0, 4.2], [0.5, 2.0, 3.1, 3.0]
    t, p = paired_t([x - y for x, y in zip(a, b)])
    ref = stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert paired_t([0.3]) == (None, None) and paired_t([0.0, 0.0]) == (0.0, 1.0)


def test_steps_to_reach_is_the_first_step_at_the_target():
    assert steps_to_reach([0.1, 0.5, 0.9], 0.5) == 2 and steps_to_reach([0.1, 0.5], 0.6) == 3
    assert steps_to_reach([0.1, 0.8499999], 0.85) == 2  # the same count in float32 and float64


def test_rows_pair_on_their_common_seeds(table):
    path, runs = table
    rows = json.loads(path.read_text())["rows"]
    a, b = (seed_summaries(r, runs) for r in rows)
    results = {r.figure: r for r in compare_rows(a, b)}
    acc = results["test accuracy (%)"]
    assert acc.n == 3  # seed 3 of B has no partner
    assert acc.diff == pytest.approx(100 * ((0.86 - 0.84) + (0.85 - 0.845) + (0.87 - 0.85)) / 3)
    assert acc.wins == 3
    assert results["decision step"].diff == pytest.approx((-0.1 + 0.0 - 0.2) / 3)
    assert results["accuracy at step 2 (%)"].diff == pytest.approx(100 * (0.04 + 0.05 + 0.05) / 3)
    # A reaches B's final accuracy at step 2 in every seed, B itself at step 3
    reach = results["steps to B's final accuracy"]
    assert (reach.a_mean, reach.b_mean, reach.diff) == (2, 3, -1)


def test_cli_prints_and_writes_the_table(table, tmp_path, capsys):
    path, runs = table
    out = tmp_path / "paired.md"
    assert cli_main(["paired", "--table", str(path), "--runs-dir", str(runs), "--out", str(out), "--", "A", "-b"]) == 0
    printed = capsys.readouterr().out
    assert "A = A, B = -b; paired by seed over 3 seeds" in printed and "| test accuracy (%) |" in printed
    assert out.read_text().strip() == printed.strip()


def test_unknown_row_and_missing_table_are_one_line_errors(table, tmp_path, capsys):
    path, runs = table
    assert cli_main(["paired", "--table", str(path), "--runs-dir", str(runs), "A", "nope"]) == 2
    assert "row 'nope' is not in" in capsys.readouterr().err
    assert cli_main(["paired", "--table", str(tmp_path / "none.json"), "A", "B"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --table") and len(err.strip().splitlines()) == 1
