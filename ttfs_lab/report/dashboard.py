"""One self-contained, offline HTML page comparing runs (and ablation tables).

plotly.js is embedded inline once; every figure is a ``<div class="plot" id=...>`` filled by
``Plotly.newPlot`` from the figure's JSON. All record text is HTML-escaped.
"""

from __future__ import annotations

import datetime as _dt
import glob
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from ttfs_lab.errors import ConfigError

from .energy_figures import energy_pareto, layer_operations
from .figures import (
    ablation_bars,
    acc_vs_step,
    layer_firing,
    learning_curves,
    pareto_scatter,
    run_colors,
    run_labels,
    slug,
    spike_time_histograms,
)
from .page import CSS, PAGE, SORT_JS
from .records import (
    RunSnapshot,
    config_differences,
    final_metrics,
    find_runs,
    load_ablation,
    load_run,
)

__all__ = ["build_dashboard", "compare", "find_ablations", "runs_table", "ablation_table"]

_COMPONENTS = ("init", "norm", "affine", "decoder", "pool")
_METRIC_COLS = [  # (key in final_metrics, header, formatter)
    ("test/acc", "test acc", lambda v: f"{v:.2%}"),
    ("val/acc_best", "val acc best", lambda v: f"{v:.2%}"),
    ("test/decision_step", "decision step", lambda v: f"{v:.2f}"),
    ("spikes_per_neuron", "spikes / neuron", lambda v: f"{v:.3f}"),
    ("energy_nj", "energy / inference", lambda v: f"{v:,.1f} nJ"),
    ("energy_ratio_ann", "energy / ANN", lambda v: f"{v:.3f}"),
    ("violations", "violations", lambda v: f"{v:g}"),
    ("epochs", "epochs", lambda v: f"{v:d}"),
    ("wall_s", "wall time", lambda v: _duration(v)),
    ("throughput", "samples / s", lambda v: f"{v:,.0f}"),
]
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def _duration(s: float) -> str:
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _value(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    if v is None:
        return "null"
    return str(v)


def runs_table(records: Sequence[RunSnapshot], colors: Sequence[str], diff_keys: Sequence[str]) -> str:
    """The ``#runs-table`` HTML: one ``tr[data-run-id]`` per record; differing config keys as ``td.diff``."""
    head = ["", "run id", "name", "dataset", "status"]
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    cells += "".join(f'<th class="num">{_e(h)}</th>' for _, h, _ in _METRIC_COLS)
    cells += "<th>components</th>"
    cells += "".join(f'<th class="diff" title="config key that differs across runs">{_e(k)}</th>' for k in diff_keys)
    out = [f'<table id="runs-table" class="sortable"><thead><tr>{cells}</tr></thead><tbody>']
    modes = {k: _mode([_value(r.config[k]) for r in records if r.config and k in r.config]) for k in diff_keys}
    for rec, color in zip(records, colors):
        bad = not rec.ok
        cls = f"status-{_e(rec.status)}" + (" problem-row" if bad else "")
        row = [f'<td><span class="swatch" style="background:{color}"></span></td>']
        row.append(f'<td class="mono nowrap">{_e(rec.run_id)}</td>')
        tags = rec.meta.get("tags") if isinstance(rec.meta.get("tags"), list) else []
        group = rec.meta.get("group")
        extra = " ".join(f'<span class="tag">{_e(t)}</span>' for t in ([f"group: {group}"] if group else []) + tags)
        row.append(f"<td>{_e(rec.name)}{'<br>' + extra if extra else ''}</td>")
        row.append(f"<td>{_e(rec.dataset)}</td>")
        status = f'<span class="badge {_e(rec.status)}">{_e(rec.status)}</span>'
        if rec.problem:
            status += f'<div class="problem">{"⚠ " if bad else ""}{_e(rec.problem)}</div>'
        row.append(f'<td class="status">{status}</td>')
        m = final_metrics(rec)
        for key, _, fmt in _METRIC_COLS:
            v = m.get(key)
            shown = fmt(v) if v is not None and (key != "epochs" or v) else "–"
            sort = "" if v is None else f' data-sort="{v}"'
            row.append(f'<td class="num"{sort}>{_e(shown)}</td>')
        row.append(f'<td class="nowrap">{_component_chips(rec.components)}</td>')
        for k in diff_keys:
            if not rec.config:
                row.append('<td class="diff na">–</td>')
                continue
            v = _value(rec.config[k]) if k in rec.config else "(absent)"
            odd = " odd" if v != modes[k] else ""
            row.append(f'<td class="diff{odd}">{_e(v)}</td>')
        out.append(f'<tr class="{cls}" data-run-id="{_e(rec.run_id)}">{"".join(row)}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _component_chips(comp: dict) -> str:
    """Compact chips: values for init/decoder/pool, the name (or ``no-name``) for boolean switches."""
    chips = []
    for k in _COMPONENTS:
        if k not in comp:
            continue
        v = comp[k]
        if isinstance(v, bool):
            text, cls = (k, "chip") if v else (f"no-{k}", "chip off")
        else:
            text, cls = _value(v), "chip"
        chips.append(f'<span class="{cls}" title="{_e(k)}: {_e(_value(v))}">{_e(text)}</span>')
    extra = [k for k in comp if k not in _COMPONENTS]
    chips += [f'<span class="chip" title="{_e(k)}">{_e(k)}: {_e(_value(comp[k]))}</span>' for k in extra]
    return "".join(chips)


def _mode(values: list[str]) -> str | None:
    return max(values, key=values.count) if values else None


def _num(v, fmt: str) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format(v, fmt)
    return "–"


def _pm(row: dict, key: str, fmt: str) -> str:
    """``mean ± std`` of ``key_mean``/``key_std``; ``–`` without a mean; ``mean (n of N runs)`` when only some
    runs of the row have the figure."""
    mean, std, n, n_ok = row.get(f"{key}_mean"), row.get(f"{key}_std"), row.get(f"{key}_n"), row.get("n_ok")
    if _num(mean, fmt) == "–":
        return "–"
    if isinstance(n, int) and isinstance(n_ok, int) and n < n_ok:
        return f"{_num(mean, fmt)} ({n} of {n_ok} runs)"
    return _num(mean, fmt) + ("" if _num(std, fmt) == "–" else f" ± {_num(std, fmt)}")


def ablation_table(table: dict) -> str:
    """Plain HTML table of an ablation study's numbers."""
    head = ["row", "kind", "seeds ok", "test acc", "decision step", "spikes / neuron", "energy (nJ)", "status", "runs"]
    out = ['<table class="ablation"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in table.get("rows", []):
        acc, step = _pm(r, "test/acc", ".2%"), _pm(r, "test/decision_step", ".2f")
        spn, energy = _pm(r, "spikes_per_neuron", ".3f"), _pm(r, "energy_nj", ",.1f")
        runs = r.get("runs") if isinstance(r.get("runs"), list) else []
        status = str(r.get("status", ""))
        out.append(
            f'<tr class="status-{_e(status)}"><td>{_e(r.get("row"))}</td><td>{_e(r.get("kind"))}</td>'
            f'<td class="num">{_e(r.get("n_ok", "?"))}/{_e(r.get("seeds", "?"))}</td>'
            f'<td class="num">{_e(acc)}</td><td class="num">{_e(step)}</td><td class="num">{_e(spn)}</td>'
            f'<td class="num">{_e(energy)}</td>'
            f'<td><span class="badge {_e(status)}">{_e(status)}</span></td>'
            f'<td class="mono small">{_e(", ".join(map(str, runs)))}</td></tr>'
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _plot(div_id: str, fig) -> str:
    spec = fig.to_json().replace("</", "<\\/").replace("<!--", "<\\!--")
    return (
        f'<div class="plot" id="{div_id}"></div>\n'
        f"<script>(function(){{var f={spec};"
        f"Plotly.newPlot({json.dumps(div_id)},f.data,f.layout,{json.dumps(_PLOT_CONFIG)});}})();</script>"
    )


def _section(sec_id: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{sec_id}"><h2>{_e(title)}</h2>{note_html}{body}</section>'


def build_dashboard(
    run_paths: Iterable[Path],
    out: Path,
    ablation_tables: Iterable[Path] = (),
    title: str = "ttfs-lab runs",
) -> Path:
    """Write the comparison page for ``run_paths`` (and ablation ``table.json`` paths) to ``out``."""
    import plotly.offline

    records = [load_run(p) for p in run_paths]
    tables = [load_ablation(p) for p in ablation_tables]
    colors, labels = run_colors(records), run_labels(records)
    diff_keys = config_differences(records)

    sections, nav = [], []

    def add(sec_id, sec_title, body, note=""):
        sections.append(_section(sec_id, sec_title, body, note))
        nav.append(f'<a href="#{sec_id}">{_e(sec_title)}</a>')

    counts = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items())) or "no runs found"
    body = runs_table(records, colors, diff_keys) if records else '<p class="empty">No runs matched.</p>'
    legend = (
        f"{len(records)} run(s): {summary}. Highlighted columns are config keys that differ across runs "
        "(darker: differs from the most common value). Click a header to sort."
    )
    add("runs", "Runs", f'<div class="scroll">{body}</div>', legend)

    figures = [
        ("curves", "Learning curves", "plot-curves", learning_curves, "Per epoch, from metrics.jsonl."),
        ("pareto", "Accuracy vs latency", "plot-pareto", pareto_scatter,
         ("Test accuracy against the mean decision step (first output spike). The dashed line joins the "
         "Pareto-optimal runs (highest accuracy for the fewest steps); they are circled.")),
        ("energy", "Accuracy vs energy per inference", "plot-energy", energy_pareto,
         ("Test accuracy against the estimated energy per inference (ACs x 0.9 pJ + MACs x 4.6 pJ by default; "
          "docs/method.md section 10). Dashed: the Pareto front; dotted: the ANN of the same layers.")),
        ("layer-ops", "Operations per layer", "plot-layer-ops", layer_operations,
         "Test set, per inference: ACs of the layers fed by spikes, MACs of the analog first layer; outlined: the ANN."),
        ("acc-vs-step", "Accuracy vs step", "plot-acc-vs-step", acc_vs_step,
         "Test accuracy when inference stops after step k (test/acc_vs_step)."),
        ("firing", "Per-layer firing", "plot-firing", layer_firing,
         ("Test set. A TTFS layer fires at most once per neuron: bars above the dotted line at 1 "
         "mean single-spike violations (e.g. max pooling).")),
        ("spike-hist", "Spike-time histograms", "plot-spike-hist", spike_time_histograms,
         "Test set, per layer: fraction of neurons whose first spike is at step 1..T; the last bin is silent."),
    ]
    for sec_id, sec_title, div_id, builder, note in figures:
        fig = builder(records, colors, labels)
        if fig is not None:
            add(sec_id, sec_title, _plot(div_id, fig), _e(note))

    seen_ids: set[str] = set()
    for t in tables:
        base = f"ablation-{slug(t['study'])}"
        sec_id, n = base, 2
        while sec_id in seen_ids:
            sec_id, n = f"{base}-{n}", n + 1
        seen_ids.add(sec_id)
        parts = []
        if t.get("problem"):
            parts.append(f'<p class="problem">⚠ {_e(t["path"])}: {_e(t["problem"])}</p>')
        fig = ablation_bars(t)
        if fig is not None:
            parts.append(_plot(f"plot-{sec_id}", fig))
        if t["rows"]:
            parts.append(ablation_table(t))
        note = f"dataset {_e(t['dataset'])}; " if t.get("dataset") else ""
        note += f"mean ± std over seeds; from {_e(t['path'])}"
        add(sec_id, f"Ablation: {t['study']}", "\n".join(parts), note)

    page = PAGE.format(
        title=_e(title),
        generated=_e(_dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
        nav=" ".join(nav),
        css=CSS,
        plotlyjs=plotly.offline.get_plotlyjs(),
        sections="\n".join(sections),
        js=SORT_JS,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def find_ablations(patterns: Iterable[str], explicit: bool = False) -> list[Path]:
    """``table.json`` files named by patterns: the file itself, a study folder, an ``ablations/`` folder,
    or a runs folder holding ``ablations/*/table.json``. ``explicit`` (``--ablation``): any named ``.json`` file
    is a table (e.g. a committed ``docs/results/*.json``), and a pattern that names none is an error."""
    found: dict[Path, Path] = {}
    for pat in patterns:
        matches = sorted(glob.glob(str(pat), recursive=True)) if glob.has_magic(str(pat)) else [str(pat)]
        hits = []
        for m in map(Path, matches):
            cands = []
            if m.is_file() and (m.name == "table.json" or (explicit and m.suffix == ".json")):
                cands = [m]
            elif m.is_dir():
                cands = [m / "table.json"] + sorted(m.glob("*/table.json")) + sorted(m.glob("ablations/*/table.json"))
            hits += [c for c in cands if c.is_file()]
        if explicit and not hits:
            raise ConfigError(f"--ablation {pat}: no ablation table there; name a table.json (or .json) file or a "
                              f"folder holding one, e.g. runs/ablations/<study>")
        for c in hits:
            found.setdefault(c.resolve(), c)
    return sorted(found.values(), key=str)


def compare(patterns: Sequence[str], out: str = "reports/compare.html", ablations: Sequence[str] = ()) -> Path:
    """Resolve run patterns (dirs, globs, parent folders such as ``runs``), add the ablation tables found
    among them (``runs/ablations/*/table.json``) and in ``ablations``, build the page, print its path."""
    runs = find_runs(patterns)
    tables = find_ablations(patterns)
    if not runs and not tables and not ablations:
        raise ConfigError(f"no run records match {' '.join(map(str, patterns)) or 'runs'}: a run record is a folder "
                          f"with meta.json (runs/<run-id>); train one first, or name ablation tables with --ablation")
    tables += [t for t in find_ablations(ablations, explicit=True) if t.resolve() not in {x.resolve() for x in tables}]
    path = build_dashboard(runs, Path(out), ablation_tables=tables)
    print(path)
    return path
