"""The comparison page as HTML text: rows, marks, highlights, one inline plotly.js, no network, escaping."""

import re
from html.parser import HTMLParser

import plotly.offline
import pytest
from fabricate import make_run, make_runs_tree

from ttfs_lab.errors import ConfigError
from ttfs_lab.report import build_dashboard, compare, find_runs
from ttfs_lab.report.dashboard import find_ablations

EVIL = '<script>alert("x")</script>&'


class _Page(HTMLParser):
    """Collects run rows (attrs + td classes/texts), plot div ids, and script tags."""

    def __init__(self):
        super().__init__()
        self.rows, self.plots, self.scripts, self.headers = [], [], [], []
        self._row = self._cell = None
        self._in_runs = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._in_runs = a.get("id") == "runs-table"
        elif tag == "tr" and self._in_runs and "data-run-id" in a:
            self._row = {"attrs": a, "cells": []}
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = {"class": a.get("class", ""), "text": ""}
            self._row["cells"].append(self._cell)
        elif tag == "th" and self._in_runs:
            self._in_th = True
            self.headers.append({"class": a.get("class", ""), "text": ""})
        elif tag == "div" and "plot" in a.get("class", "").split():
            self.plots.append(a.get("id"))
        elif tag == "script":
            self.scripts.append(a)

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_runs = False
        elif tag == "tr":
            self._row = None
        elif tag == "td":
            self._cell = None
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in_th:
            self.headers[-1]["text"] += data


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash") / "runs"
    tree = make_runs_tree(root)
    make_run(root, "20250105-evil", name=EVIL, acc=0.95, decision_step=3.9, config={"model": {"pool": "max"}})
    runs = find_runs([root])
    out = build_dashboard(runs, root.parent / "out" / "compare.html", ablation_tables=[tree["ablation"]])
    text = out.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(text)
    return {"text": text, "parsed": parsed, "runs": runs, "tree": tree}


def test_one_row_per_run(page):
    rows = page["parsed"].rows
    assert len(rows) == len(page["runs"]) == 8
    assert page["text"].count("data-run-id=") == 8
    assert {r["attrs"]["data-run-id"] for r in rows} >= {"20250101-ettfs_twd", "20250104-corrupt"}


def test_problem_rows_are_marked(page):
    rows = {r["attrs"]["data-run-id"]: r for r in page["parsed"].rows}
    for rid, status, text in [
        ("20250103-incomplete", "incomplete", "summary.json missing"),
        ("20250104-corrupt", "corrupt", "meta.json unreadable"),
    ]:
        cls = rows[rid]["attrs"]["class"].split()
        assert f"status-{status}" in cls and "problem-row" in cls
        assert any(text in c["text"] for c in rows[rid]["cells"])
    assert "problem-row" not in rows["20250101-ettfs_twd"]["attrs"]["class"]
    assert "problem-row" not in rows["20250102-failed"]["attrs"]["class"]  # a failed run is a valid record
    assert any("loss is NaN" in c["text"] for c in rows["20250102-failed"]["cells"])


def test_differing_config_keys_highlighted(page):
    diff_headers = [h["text"] for h in page["parsed"].headers if "diff" in h["class"].split()]
    assert diff_headers == ["model.decoder", "model.init", "model.lr", "model.pool"]
    row = {r["attrs"]["data-run-id"]: r for r in page["parsed"].rows}["20250101-kaiming_twd"]
    diff_cells = [c for c in row["cells"] if "diff" in c["class"].split()]
    assert [c["text"] for c in diff_cells] == ["twd", "kaiming", "0.002", "avg"]
    odd = [c["text"] for c in diff_cells if "odd" in c["class"].split()]
    assert odd == ["kaiming", "0.002"]  # differs from the most common value


def test_plotly_embedded_once_and_offline(page):
    text = page["text"]
    js = plotly.offline.get_plotlyjs()
    assert text.count(js[:300]) == 1 and text.count(js[-300:]) == 1
    assert all("src" not in s for s in page["parsed"].scripts)  # everything inline
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//", text, re.I)


def test_plots_present(page):
    assert page["parsed"].plots == [
        "plot-curves", "plot-pareto", "plot-acc-vs-step", "plot-firing", "plot-spike-hist",
        "plot-ablation-components",
    ]
    assert "Plotly.newPlot" in page["text"]
    assert '<table class="ablation">' in page["text"] and "95.80% ± 0.40%" in page["text"]


def test_user_text_is_escaped(page):
    text = page["text"]
    assert EVIL not in text and '<script>alert("x")' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in text  # in the table


def test_sections_omitted_without_data(tmp_path):
    d = make_run(tmp_path, "only-running", status="running", epochs=2)
    out = build_dashboard([d], tmp_path / "a.html")
    parsed = _Page()
    parsed.feed(out.read_text())
    assert parsed.plots == ["plot-curves"] and len(parsed.rows) == 1
    # no runs at all: still a valid page
    out = build_dashboard([], tmp_path / "b.html", title="nothing <here>")
    text = out.read_text()
    assert "No runs matched" in text and "nothing &lt;here&gt;" in text and 'class="plot"' not in text


def test_compare_resolves_runs_and_ablations(page, tmp_path, monkeypatch, capsys):
    root = page["tree"]["root"]
    monkeypatch.chdir(root.parent)
    assert find_ablations(["runs"]) == [page["tree"]["ablation"].relative_to(root.parent)]
    path = compare(["runs"], out=str(tmp_path / "reports" / "c.html"))
    assert capsys.readouterr().out.strip() == str(path) and path.is_file()
    text = path.read_text()
    assert text.count("data-run-id=") == 8 and 'id="plot-ablation-components"' in text
    # run globs alone do not pull in ablations; the ablations argument does
    path = compare(["runs/2025010[12]-*"], out=str(tmp_path / "c2.html"), ablations=["runs/ablations"])
    text = path.read_text()
    assert text.count("data-run-id=") == 5 and 'id="plot-ablation-components"' in text


def test_an_explicit_ablation_file_may_have_any_name_and_a_missing_one_is_an_error(page, tmp_path):
    """``--ablation docs/results/ablation-seed0.json`` (a committed table) is shown; a name that matches no table
    is a one-line error instead of a page silently without the section."""
    committed = tmp_path / "docs" / "ablation-seed0.json"
    committed.parent.mkdir()
    committed.write_text(page["tree"]["ablation"].read_text())
    assert find_ablations([str(committed)]) == []  # among run patterns only table.json counts
    assert find_ablations([str(committed)], explicit=True) == [committed]
    path = compare([str(page["tree"]["root"] / "2025010[12]-*")], out=str(tmp_path / "c.html"),
                   ablations=[str(committed)])
    assert 'id="plot-ablation-ablation-seed0"' in path.read_text()  # no study inside: named after the file
    with pytest.raises(ConfigError, match="--ablation .*nothing.json: no ablation table there"):
        compare(["runs"], out=str(tmp_path / "c3.html"), ablations=[str(tmp_path / "nothing.json")])


def test_wrongly_typed_fields_do_not_crash(tmp_path):
    import json

    d = make_run(tmp_path, "odd")
    meta = json.loads((d / "meta.json").read_text())
    meta.update(name=123, components="ettfs", tags="not-a-list", group=["x"])
    (d / "meta.json").write_text(json.dumps(meta))
    (d / "summary.json").write_text(json.dumps({
        "test/acc": "high", "test/decision_step": None, "test/acc_vs_step": {"a": 1},
        "test/spikes_per_neuron": [1, 2], "test/silent_fraction": {"l1": "x"},
        "test/violations": {"l1": True}, "test/spike_time_hist": {"l1": "abc", "l2": [1, None]},
        "wall_s": float("nan"),
    }).replace("NaN", "1e999"))
    (d / "metrics.jsonl").write_text('{"epoch": "zero", "val/acc": "x"}\n[1, 2]\n')
    good = make_run(tmp_path, "good")
    out = build_dashboard([d, good], tmp_path / "odd.html")
    parsed = _Page()
    parsed.feed(out.read_text())
    assert len(parsed.rows) == 2
    assert "plot-pareto" in parsed.plots  # the good run alone still gives a point


def test_compare_on_a_pattern_matching_nothing_is_a_one_line_error(tmp_path):
    """Instead of an empty page and exit 0 without a word."""
    with pytest.raises(ConfigError, match="no run records match .*nothing-"):
        compare([str(tmp_path / "nothing-*")], out=str(tmp_path / "c.html"))
    assert not (tmp_path / "c.html").exists()


def test_ablation_cells_say_when_a_figure_comes_from_fewer_runs_than_the_row():
    from ttfs_lab.report.dashboard import ablation_table

    row = {"row": "full", "kind": "ladder", "n_ok": 2, "seeds": 2, "status": "ok", "runs": ["a", "b"],
           "test/acc_mean": 0.83, "test/acc_std": 0.01, "test/acc_n": 2,
           "energy_nj_mean": 3917.3, "energy_nj_std": 0.0, "energy_nj_n": 1}
    html_text = ablation_table({"rows": [row]})
    assert "3,917.3 (1 of 2 runs)" in html_text and "83.00% ± 1.00%" in html_text
