"""The dashboard's energy figures (docs/method.md section 10): accuracy vs energy with its Pareto front, per-layer
operation bars against the ANN, and the energy columns of the runs table."""

import json

from fabricate import make_run

from ttfs_lab.report import build_dashboard, load_run
from ttfs_lab.report.energy_figures import energy_pareto, layer_operations
from ttfs_lab.report.figures import run_colors, run_labels

LAYERS = {"layer1_c4_syn": ("mac", 28224.0, 28224.0), "layer3_fc10_syn": ("ac", 9000.0, 7840.0)}


def _energy_run(root, run_id, acc, energy_nj, ac):
    d = make_run(root, run_id, acc=acc)
    summary = json.loads((d / "summary.json").read_text())
    summary.update({"test/energy_nj": energy_nj, "test/energy_exit_nj": energy_nj / 2, "test/ann_energy_nj": 166.0,
                    "test/energy_ratio_ann": energy_nj / 166.0,
                    "test/ops_per_layer": {k: {"kind": kind, "ops": ac if kind == "ac" else ops, "ops_exit": ops / 2,
                                               "ann_mac": ann} for k, (kind, ops, ann) in LAYERS.items()}})
    (d / "summary.json").write_text(json.dumps(summary))
    return load_run(d)


def _records(tmp_path):
    return [_energy_run(tmp_path, "a", 0.90, 140.0, 9000.0), _energy_run(tmp_path, "b", 0.85, 150.0, 12000.0),
            _energy_run(tmp_path, "c", 0.80, 135.0, 4000.0), load_run(make_run(tmp_path, "old", acc=0.99))]


def test_energy_pareto_front_and_ann_line(tmp_path):
    recs = _records(tmp_path)
    fig = energy_pareto(recs, run_colors(recs), run_labels(recs))
    front = fig.data[0]
    assert front.name == "Pareto front" and list(front.x) == [135.0, 140.0] and list(front.y) == [0.80, 0.90]
    assert [t.name for t in fig.data[1:]] == ["a", "b", "c"]  # the run without counts is left out
    assert fig.layout.xaxis.type == "log" and fig.layout.shapes[0].x0 == 166.0  # the ANN of the same layers


def test_layer_operation_bars_against_the_ann(tmp_path):
    recs = _records(tmp_path)
    fig = layer_operations(recs, run_colors(recs), run_labels(recs))
    assert [t.name for t in fig.data] == ["a", "b", "c", "ANN (same layers), MACs"]
    assert list(fig.data[1].y) == [28224.0, 12000.0] and list(fig.data[-1].y) == [28224.0, 7840.0]
    assert fig.data[0].customdata[0][0] == "MAC" and fig.data[0].customdata[1][0] == "AC"


def test_figures_absent_without_counts(tmp_path):
    recs = [load_run(make_run(tmp_path, "old"))]
    assert energy_pareto(recs, ["#000"], ["old"]) is None and layer_operations(recs, ["#000"], ["old"]) is None


def test_dashboard_shows_energy(tmp_path):
    recs = _records(tmp_path)
    text = build_dashboard([r.path for r in recs], tmp_path / "page.html").read_text()
    assert 'id="plot-energy"' in text and 'id="plot-layer-ops"' in text
    assert "140.0 nJ" in text and "0.843" in text  # a's energy per inference and its ratio to the ANN (140 / 166)
