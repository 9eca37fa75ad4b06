"""ttfs_lab/record/summary.py: one definition of spikes per neuron, shown alike by the printed line, the ablation
table and the dashboard; one shape of the stage keys; the best epoch a sweep reads."""

import re

import pytest
import torch

from ttfs_lab.ablate import Row, aggregate
from ttfs_lab.functional.stats import spike_summary
from ttfs_lab.metrics import SpikeStatistics
from ttfs_lab.record import RunRecord, best_epoch, evaluation_summary, load_run, spikes_per_neuron, stage_summary
from ttfs_lab.report.dashboard import runs_table
from ttfs_lab.report.records import final_metrics
from ttfs_lab.train import print_summary


def unequal_layers_results():
    """A small layer that always fires (4 of 4 units) and a wide one that fires once (1 of 16 units):
    5 spikes over 20 neurons = 0.25 per neuron, where the unweighted mean of the layers would be 0.53125."""
    small, wide = torch.zeros(2, 1, 4), torch.zeros(2, 1, 16)
    small[0] = 1
    wide[1, 0, 3] = 1
    stats = SpikeStatistics(["small", "wide"], T=2)
    stats.update({"small": spike_summary(small), "wide": spike_summary(wide)})
    return {**stats.compute(), "acc": 0.75, "decision_step": 1.5, "acc_vs_step": [0.5, 0.75], "ops": None}


def test_spikes_per_neuron_weights_layers_by_their_units():
    summary = stage_summary("test", unequal_layers_results())
    assert summary["test/spikes_per_neuron"] == {"small": 1.0, "wide": 1 / 16}  # per layer: a dict
    assert spikes_per_neuron(summary) == pytest.approx(5 / 20)
    assert spikes_per_neuron({"test/spikes_per_neuron": 0.25}) == 0.25  # the scalar older `test` records wrote
    assert spikes_per_neuron({"test/spikes_per_neuron": {"a": 1.0}}) is None  # layers alone cannot be weighted


def test_the_printed_line_the_ablation_table_and_the_dashboard_show_one_number(tmp_path, capsys):
    summary = stage_summary("test", unequal_layers_results())
    print_summary("r", summary)
    printed = float(re.search(r"spikes per neuron ([0-9.]+)", capsys.readouterr().out).group(1))
    table = aggregate(Row("row", "ladder", {}), [summary], ["r"], [], seeds=1)["spikes_per_neuron_mean"]
    record = RunRecord(tmp_path / "r")
    record.start(run_id="r", stage="test")
    record.finish(summary)
    snap = load_run(record.path)
    dashboard = final_metrics(snap)["spikes_per_neuron"]
    assert printed == table == dashboard == pytest.approx(0.25)
    assert ">0.250<" in runs_table([snap], ["#000"], [])  # the cell under "spikes / neuron"


def test_evaluation_keys_have_the_shapes_fit_writes():
    results = unequal_layers_results()
    fit_keys = stage_summary("test", results, loss=0.5)
    evaluation = evaluation_summary("test", results, 0.5, "best.ckpt", 1.0)
    assert {k: type(v) for k, v in fit_keys.items()} == {k: type(evaluation[k]) for k in fit_keys}
    assert evaluation["checkpoint"] == "best.ckpt" and stage_summary("val", None) == {}


def test_best_epoch_is_the_first_with_the_highest_val_acc():
    rows = [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": 0.7, "val/energy_nj": 3.0},
            {"epoch": 2, "val/acc": 0.7, "val/energy_nj": 2.0}, {"epoch": 3}]
    assert best_epoch(rows) == {"epoch": 1, "val/acc": 0.7, "val/energy_nj": 3.0}
    assert best_epoch([{"epoch": 0, "train/loss": 1.0}]) == {}
