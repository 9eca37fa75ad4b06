"""The ablation runner: every row gets numbers, failures stay in their row, re-runs skip finished runs."""

import json
from pathlib import Path

import pytest
import yaml

from ttfs_lab.ablate import load_grid, run_ablation
from ttfs_lab.cli import main as cli_main

GRID = Path(__file__).parents[1] / "configs" / "ablation.yaml"


@pytest.fixture
def base_config(tiny_config, tmp_path):
    path = tmp_path / "base.yaml"
    tiny_config["trainer"]["max_epochs"] = 1
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def write_grid(tmp_path, ladder, leave_one_out=()):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"seeds": 1, "baseline": {"model.init": "kaiming", "model.pool": "max"},
                                    "ladder": ladder, "full": {"model.init": "ettfs"},
                                    "leave_one_out": list(leave_one_out)}))
    return path


def test_shipped_grid_is_the_papers_ladder_and_leave_one_out():
    rows, seeds = load_grid(GRID)
    ladder = [r for r in rows if r.kind == "ladder"]
    assert [r.name for r in ladder] == ["baseline", "+ettfs_init", "+avg_pool", "+norm", "+affine", "+twd"]
    assert ladder[0].overrides == {"model.init": "kaiming", "model.pool": "max", "model.norm": False,
                                   "model.affine": False, "model.decoder": "first_spike"}
    full = {"model.init": "ettfs", "model.init_gain": 0.5, "model.pool": "avg", "model.norm": True, "model.affine": True,
            "model.decoder": "twd"}
    assert ladder[-1].overrides == full
    loo = {r.name: r for r in rows if r.kind == "leave_one_out"}
    switched = {"-ettfs_init": {"model.init", "model.init_gain"},  # ETTFS-init is its rule and its gain
                "-avg_pool": {"model.pool"}, "-norm": {"model.norm"}, "-affine": {"model.affine"},
                "-twd": {"model.decoder"}}
    assert sorted(loo) == sorted(switched)
    for name, r in loo.items():
        assert {k for k in full if r.overrides[k] != full[k]} == switched[name], name
    assert seeds == 3


def test_tiny_ablation_table_has_every_row_with_numbers(base_config, tmp_path):
    grid = write_grid(tmp_path, [{"name": "baseline", "set": {}}, {"name": "+ettfs", "set": {"model.init": "ettfs"}}])
    runs = tmp_path / "runs"
    table = run_ablation("mnist5k", str(grid), str(base_config), runs_dir=str(runs), wandb="disabled")
    assert [r["row"] for r in table["rows"]] == ["baseline", "+ettfs"]
    for row in table["rows"]:
        assert row["status"] == "ok" and row["n_ok"] == 1
        assert 0 <= row["test/acc_mean"] <= 1 and 1 <= row["test/decision_step_mean"] <= 4
        assert row["spikes_per_neuron_mean"] >= 0 and row["test/acc_std"] == 0.0
    saved = json.loads((runs / "ablations" / "ablation-mnist5k" / "table.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(table["rows"]))
    markdown = (runs / "ablations" / "ablation-mnist5k" / "table.md").read_text()
    assert "| baseline |" in markdown and "| +ettfs |" in markdown

    summaries = sorted(runs.glob("ablation-mnist5k-*/summary.json"))
    assert len(summaries) == 2
    stamps = [p.stat().st_mtime_ns for p in summaries]
    again = run_ablation("mnist5k", str(grid), str(base_config), runs_dir=str(runs), wandb="disabled")
    assert [p.stat().st_mtime_ns for p in summaries] == stamps  # nothing re-trained
    assert again["rows"][0]["test/acc_mean"] == table["rows"][0]["test/acc_mean"]


def test_a_failing_row_does_not_stop_the_others(base_config, tmp_path):
    grid = write_grid(tmp_path, [{"name": "broken", "set": {"model.decoder": "nonsense"}}],
                      [{"name": "fine", "set": {}}])
    table = run_ablation("mnist5k", str(grid), str(base_config), runs_dir=str(tmp_path / "runs"), wandb="disabled")
    broken, fine = table["rows"]
    assert broken["status"] == "failed" and "decoder" in broken["errors"][0] and broken["test/acc_mean"] is None
    assert fine["status"] == "ok" and fine["test/acc_mean"] is not None


def test_bad_grid_file_gives_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ladder:\n  - [not, a, row]\n")
    assert cli_main(["ablate", "--grid", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad.yaml" in err and "ladder[0]" in err and "\n" not in err


def test_reference_rows_are_complete_settings_of_their_own(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"baseline": {"model.init": "kaiming"}, "ladder": [{"name": "b", "set": {}}],
                                    "references": [{"name": "naive", "set": {"model.init": "default",
                                                                             "model.decoder": "membrane"}}]}))
    rows, _ = load_grid(path)
    assert [(r.name, r.kind) for r in rows] == [("b", "ladder"), ("naive", "reference")]
    assert rows[1].overrides == {"model.init": "default", "model.decoder": "membrane"}  # nothing of the baseline
    path.write_text(yaml.safe_dump({"references": [{"set": {}}]}))
    with pytest.raises(Exception, match=r"references\[0\] must be"):
        load_grid(path)


def test_shipped_grid_has_the_naive_reference_and_the_depth_grid_differs_only_in_init_and_norm():
    rows, _ = load_grid(GRID)
    refs = {r.name: r for r in rows if r.kind == "reference"}
    assert sorted(refs) == ["framework_early", "framework_membrane", "framework_twd_membrane", "naive"]
    naive = refs["naive"].overrides
    assert naive["model.decoder"] == "membrane" and naive["model.norm"] is False
    # framework_membrane: the full framework's training with the naive row's readout, nothing else changed
    full = next(r for r in rows if r.name == "+twd").overrides
    membrane = refs["framework_membrane"].overrides
    assert {k for k in full if full[k] != membrane.get(k)} == {"model.decoder"}
    assert membrane["model.decoder"] == naive["model.decoder"]
    twd_membrane = refs["framework_twd_membrane"].overrides
    assert {k for k in full if full[k] != twd_membrane.get(k)} == {"model.decoder"}
    early = refs["framework_early"].overrides  # the full framework plus the per-step loss, nothing else changed
    assert {k: v for k, v in early.items() if full.get(k) != v} == {"model.early_loss": 1.0}
    depth, _ = load_grid(GRID.parent / "ablation_depth.yaml")
    by_stack: dict = {}  # (spec, surrogate alpha, Adam's eps) -> rows
    for r in depth:
        key = (r.overrides["model.spec"], r.overrides.get("model.alpha"), r.overrides.get("model.adam_eps"))
        by_stack.setdefault(key, []).append(r)
    assert all(sum(t.startswith(("c", "fc")) for t in spec.split("-")) >= 8 for spec, _, _ in by_stack)
    assert {alpha for _, alpha, _ in by_stack} == {None, 2.0}  # the default surrogate and the broader one
    assert {eps for _, _, eps in by_stack} == {None, 1e-16}  # torch's Adam eps and one below the deep gradients
    for group in by_stack.values():  # within one stack, surrogate and readout, only init and normalization differ
        group = [r for r in group if r.overrides.get("model.decoder") is None]
        differing = {k for r in group for k in r.overrides if len({str(o.overrides.get(k)) for o in group}) > 1}
        assert differing <= {"model.init", "model.init_gain", "model.norm", "model.affine"}
        assert "model.init" in differing
    twdm = [r for r in depth if r.overrides.get("model.decoder") == "twd_membrane"]
    assert {r.overrides["model.init"] for r in twdm} == {"ettfs", "kaiming"}


def test_run_keys_follow_the_resolved_configuration_not_only_the_row_settings():
    """Editing the base config (or --set) must start fresh runs, never reuse stale ones; rows that resolve to the
    same configuration share their runs."""
    rows, _ = load_grid(GRID)
    by_name = {r.name: r for r in rows}
    base = {"model": {"T": 8, "lr": 0.001}, "trainer": {"max_epochs": 2}}
    full, minus_twd, plus_affine = by_name["+twd"], by_name["-twd"], by_name["+affine"]
    assert full.key(base) == by_name["+twd"].key(base)
    assert minus_twd.key(base) == plus_affine.key(base)  # the same settings from two families: shared runs
    edited = {"model": {"T": 8, "lr": 0.002}, "trainer": {"max_epochs": 2}}
    assert full.key(edited) != full.key(base)
    assert full.key(base, {"trainer.max_epochs": 3}) != full.key(base)
    assert full.key(base) != minus_twd.key(base)


def test_table_has_operation_and_energy_columns():
    """Each figure of docs/method.md section 10 is a column, mean ± std over seeds (M operations, nJ)."""
    from ttfs_lab.ablate import Row, aggregate, markdown

    keys = ("test/synops_ac", "test/synops_mac", "test/energy_nj", "test/energy_exit_nj", "test/energy_ratio_ann")
    summaries = [dict(zip(keys, (2.0e6, 2.0e5, 3000.0, 2000.0, 0.2))),
                 dict(zip(keys, (4.0e6, 2.0e5, 5000.0, 3000.0, 0.3)))]
    entry = aggregate(Row("full", "ladder", {}), summaries, ["r-s0", "r-s1"], [], 2)
    assert entry["energy_nj_mean"] == 4000.0 and entry["energy_nj_std"] == pytest.approx(2 ** 0.5 * 1000)
    text = markdown({"study": "s", "dataset": "d", "seeds": 2, "rows": [entry]})
    header, rule, line = text.splitlines()[2:5]
    assert header.count("|") == rule.count("|") == line.count("|")
    assert "| 3.000 ± 1.414 | 0.200 ± 0.000 | 4000.0 ± 1414.2 | 2500.0 ± 707.1 | 0.250 ± 0.071 |" in line


def test_a_figure_missing_from_some_runs_says_how_many_runs_it_comes_from():
    """Runs recorded before a figure existed (e.g. energy) must not show a mean '± 0.00' as if every seed agreed."""
    from ttfs_lab.ablate import Row, aggregate, markdown

    summaries = [{"test/acc": 0.8, "test/energy_nj": 3000.0}, {"test/acc": 0.82}]
    row = aggregate(Row("r", "ladder", {}), summaries, ["a", "b"], [], 2)
    assert row["energy_nj_n"] == 1 and row["test/acc_n"] == 2
    line = markdown({"study": "s", "dataset": "d", "seeds": 2, "rows": [row]}).splitlines()[-1]
    assert "3000.0 (1 of 2 runs)" in line and "81.00 ± 1.41" in line


def test_rows_run_separately_end_up_in_one_table(base_config, tmp_path):
    grid = write_grid(tmp_path, [{"name": "baseline", "set": {}}, {"name": "+ettfs", "set": {"model.init": "ettfs"}}])
    runs = tmp_path / "runs"
    run_ablation("mnist5k", str(grid), str(base_config), runs_dir=str(runs), wandb="disabled", only=["+ettfs"])
    table = run_ablation("mnist5k", str(grid), str(base_config), runs_dir=str(runs), wandb="disabled",
                         only=["baseline"])
    assert [r["row"] for r in table["rows"]] == ["baseline", "+ettfs"]  # grid order, both kept
    saved = json.loads((runs / "ablations" / "ablation-mnist5k" / "table.json").read_text())
    assert [r["row"] for r in saved["rows"]] == ["baseline", "+ettfs"]
    # a changed base configuration makes other runs: the stale row of the old configuration is dropped
    changed = tmp_path / "changed.yaml"
    cfg = yaml.safe_load(base_config.read_text())
    cfg["model"]["lr"] = 0.002
    changed.write_text(yaml.safe_dump(cfg))
    table = run_ablation("mnist5k", str(grid), str(changed), runs_dir=str(runs), wandb="disabled", only=["baseline"])
    assert [r["row"] for r in table["rows"]] == ["baseline"]
