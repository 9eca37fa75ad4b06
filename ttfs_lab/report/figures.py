"""Plotly figures of the comparison dashboard; each builder returns ``None`` when no run has the data.

All text that comes from run records is HTML-escaped before it reaches plotly (plotly interprets a
subset of HTML in labels), so a run named ``<b>x</b>`` shows literally.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ttfs_lab.record import RunSnapshot, is_number

from .records import final_metrics

__all__ = [
    "pareto_front",
    "run_colors",
    "run_labels",
    "learning_curves",
    "pareto_scatter",
    "acc_vs_step",
    "layer_firing",
    "spike_time_histograms",
    "ablation_bars",
]

_PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
_FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points of ``(accuracy, decision_step)`` pairs, maximizing accuracy
    and minimizing decision step, ordered by increasing decision step (then decreasing accuracy).

    A point is on the front when no other point is at least as good in both and strictly better in one;
    exact duplicates are all kept. Points with a non-finite or missing coordinate are ignored.
    """
    valid = [
        (i, float(a), float(s))
        for i, (a, s) in enumerate(points)
        if is_number(a) and is_number(s)
    ]
    front = []
    for i, a, s in valid:
        dominated = any(
            (a2 >= a and s2 <= s) and (a2 > a or s2 < s) for j, a2, s2 in valid if j != i
        )
        if not dominated:
            front.append((s, -a, i))
    return [i for _, _, i in sorted(front)]


def run_colors(records: Sequence[RunSnapshot]) -> list[str]:
    """One stable colour per record (by position), shared by every figure and the runs table."""
    return [_PALETTE[i % len(_PALETTE)] for i in range(len(records))]


def run_labels(records: Sequence[RunSnapshot], max_len: int = 36) -> list[str]:
    """Legend labels (raw, unescaped): the run name, with the run id appended where names repeat,
    shortened to ``max_len`` characters so that long names do not squeeze the plots."""
    names = [r.name for r in records]
    labels = [
        n if names.count(n) == 1 or n == r.run_id else f"{n} ({r.run_id})"
        for n, r in zip(names, records)
    ]
    return [s if len(s) <= max_len else s[: max_len - 1] + "…" for s in labels]


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=False)


def _style(fig: go.Figure, height: int, top: int = 40) -> go.Figure:
    """Common look. No figure title: the page's section heading names the figure."""
    fig.update_layout(
        height=height,
        template="plotly_white",
        font=_FONT,
        margin=dict(l=65, r=20, t=top, b=55),
        legend=dict(orientation="v", x=1.01, y=1, font=dict(size=11)),
        hoverlabel=dict(namelength=-1),
    )
    return fig


def learning_curves(records, colors, labels) -> go.Figure | None:
    """val/acc and train/loss vs epoch, one trace per run, two panels sharing a legend."""
    panels = [("val/acc", 1, "Validation accuracy"), ("train/loss", 2, "Training loss")]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[2] for p in panels], horizontal_spacing=0.08)
    n = 0
    for rec, color, label in zip(records, colors, labels):
        first = True
        for key, col, _ in panels:
            xs, ys = rec.series(key)
            if not xs:
                continue
            n += 1
            fig.add_trace(
                go.Scatter(
                    x=xs, y=ys, mode="lines+markers", name=_esc(label), legendgroup=_esc(rec.run_id),
                    showlegend=first, line=dict(color=color, width=2), marker=dict(size=5),
                    hovertemplate=f"{_esc(label)}<br>epoch %{{x}}<br>{key} %{{y:.4f}}<extra></extra>",
                ),
                row=1, col=col,
            )
            first = False
    if not n:
        return None
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="val/acc", tickformat=".1%", row=1, col=1)
    fig.update_yaxes(title_text="train/loss", row=1, col=2)
    return _style(fig, 400)


def pareto_scatter(records, colors, labels) -> go.Figure | None:
    """Test accuracy vs mean decision step, one marker per run, with the Pareto front as a line."""
    pts, idx = [], []
    for i, rec in enumerate(records):
        m = final_metrics(rec)
        if m["test/acc"] is not None and m["test/decision_step"] is not None:
            pts.append((m["test/acc"], m["test/decision_step"]))
            idx.append(i)
    if not pts:
        return None
    fig = go.Figure()
    front = pareto_front(pts)
    if front:
        fig.add_trace(
            go.Scatter(
                x=[pts[k][1] for k in front], y=[pts[k][0] for k in front], mode="lines+markers",
                name="Pareto front", line=dict(color="#444", width=1.5, dash="dash"),
                marker=dict(symbol="circle-open", size=20, color="#444", line=dict(width=2)),
                hoverinfo="skip",
            )
        )
    for k, (acc, step) in enumerate(pts):
        i = idx[k]
        star = " ★ Pareto" if k in front else ""
        fig.add_trace(
            go.Scatter(
                x=[step], y=[acc], mode="markers", name=_esc(labels[i]),
                marker=dict(size=12, color=colors[i], line=dict(color="white", width=1)),
                hovertemplate=(
                    f"{_esc(labels[i])}{star}<br>decision step %{{x:.2f}}<br>test acc %{{y:.2%}}<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(title_text="mean decision step (lower = faster)")
    fig.update_yaxes(title_text="test accuracy", tickformat=".1%")
    return _style(fig, 420, top=20)


def acc_vs_step(records, colors, labels) -> go.Figure | None:
    """test/acc_vs_step: accuracy when stopping after step k = 1..T, one line per run."""
    fig = go.Figure()
    for rec, color, label in zip(records, colors, labels):
        curve = rec.summary.get("test/acc_vs_step")
        if not isinstance(curve, list):
            continue
        ks = [k for k, v in enumerate(curve, 1) if is_number(v)]
        ys = [float(v) for v in curve if is_number(v)]
        if not ks:
            continue
        fig.add_trace(
            go.Scatter(
                x=ks, y=ys, mode="lines+markers", name=_esc(label), line=dict(color=color, width=2),
                hovertemplate=f"{_esc(label)}<br>stop after step %{{x}}<br>acc %{{y:.2%}}<extra></extra>",
            )
        )
    if not fig.data:
        return None
    fig.update_xaxes(title_text="stop after step k", dtick=1)
    fig.update_yaxes(title_text="test accuracy", tickformat=".0%", rangemode="tozero")
    return _style(fig, 400, top=20)


def _layers(records, key: str) -> list[str]:
    seen: list[str] = []
    for rec in records:
        d = rec.summary.get(key)
        if isinstance(d, dict):
            seen += [str(k) for k in d if str(k) not in seen]
    return seen


def layer_firing(records, colors, labels) -> go.Figure | None:
    """Spikes per neuron and silent fraction per layer, grouped bars per run."""
    panels = [("test/spikes_per_neuron", 1), ("test/silent_fraction", 2)]
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.08,
        subplot_titles=["Spikes per neuron (≤ 1 in a TTFS layer)", "Silent fraction"],
    )
    for rec, color, label in zip(records, colors, labels):
        first = True
        for key, col in panels:
            d = rec.summary.get(key)
            if not isinstance(d, dict):
                continue
            items = [(str(k), float(v)) for k, v in d.items() if is_number(v)]
            if not items:
                continue
            fig.add_trace(
                go.Bar(
                    x=[_esc(k) for k, _ in items], y=[v for _, v in items], name=_esc(label),
                    legendgroup=_esc(rec.run_id), showlegend=first, marker_color=color,
                    hovertemplate=f"{_esc(label)}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
                ),
                row=1, col=col,
            )
            first = False
    if not fig.data:
        return None
    for key, col in panels:
        order = [_esc(k) for k in _layers(records, key)]
        fig.update_xaxes(title_text="layer", categoryorder="array", categoryarray=order, row=1, col=col)
    fig.add_hline(y=1.0, line=dict(color="#c0392b", dash="dot", width=1), row=1, col=1)
    fig.update_yaxes(title_text="spikes / neuron", row=1, col=1)
    fig.update_yaxes(title_text="fraction silent", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_layout(barmode="group", bargap=0.2)
    return _style(fig, 400)


def spike_time_histograms(records, colors, labels) -> go.Figure | None:
    """Per layer: fraction of neurons whose first spike falls at step 1..T, last bin = silent."""
    layers = _layers(records, "test/spike_time_hist")
    if not layers:
        return None
    cols = len(layers) if len(layers) <= 3 else (2 if len(layers) == 4 else 3)
    rows = math.ceil(len(layers) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[_esc(name) for name in layers],
        horizontal_spacing=0.06, vertical_spacing=min(0.12, 0.35 / rows),
    )
    shown: set[int] = set()
    for i, (rec, color, label) in enumerate(zip(records, colors, labels)):
        hists = rec.summary.get("test/spike_time_hist")
        if not isinstance(hists, dict):
            continue
        for li, layer in enumerate(layers):
            counts = hists.get(layer)
            if not isinstance(counts, list) or not counts or not all(is_number(c) for c in counts):
                continue
            total = sum(counts) or 1.0
            xs = [str(k) for k in range(1, len(counts))] + ["silent"]
            fig.add_trace(
                go.Bar(
                    x=xs, y=[c / total for c in counts], name=_esc(label), legendgroup=_esc(rec.run_id),
                    showlegend=i not in shown, marker_color=color,
                    hovertemplate=f"{_esc(label)}<br>first spike at %{{x}}: %{{y:.1%}}<extra></extra>",
                ),
                row=li // cols + 1, col=li % cols + 1,
            )
            shown.add(i)
    if not fig.data:
        return None
    fig.update_yaxes(tickformat=".0%")
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="first-spike step", row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="fraction of neurons", row=r, col=1)
    fig.update_layout(barmode="group", bargap=0.15)
    return _style(fig, 90 + 280 * rows)


_KIND_COLORS = {"ladder": "#4C78A8", "leave_one_out": "#F58518"}


def ablation_bars(table: dict) -> go.Figure | None:
    """Test accuracy and decision step (mean ± std over seeds) per ablation row, coloured by kind."""
    rows = [r for r in table.get("rows", []) if isinstance(r, dict)]
    if not rows:
        return None
    names = [_esc(r.get("row", f"row {i}")) for i, r in enumerate(rows)]
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1,
        subplot_titles=["Test accuracy (mean ± std over seeds)", "Decision step (mean ± std)"],
    )
    kinds = list(dict.fromkeys(str(r.get("kind", "other")) for r in rows))
    lows, highs = [], []
    for kind in kinds:
        sel = [(n, r) for n, r in zip(names, rows) if str(r.get("kind", "other")) == kind]
        for col, key in ((1, "test/acc"), (2, "test/decision_step")):
            xs, ys, es, hover = [], [], [], []
            for n, r in sel:
                m, s = r.get(f"{key}_mean"), r.get(f"{key}_std")
                if not is_number(m):
                    continue
                xs.append(n)
                ys.append(float(m))
                es.append(float(s) if is_number(s) else 0.0)
                ok, seeds, status = (_esc(r.get(k, "?")) for k in ("n_ok", "seeds", "status"))
                hover.append(f"{ok}/{seeds} seeds ok, {status}")
                if col == 1:
                    lows.append(float(m) - es[-1])
                    highs.append(float(m) + es[-1])
            if not xs:
                continue
            fmt = ".2%" if col == 1 else ".2f"
            fig.add_trace(
                go.Bar(
                    x=xs, y=ys, error_y=dict(type="data", array=es, visible=True, thickness=1.5),
                    name=_esc(kind.replace("_", "-")), legendgroup=kind, showlegend=col == 1,
                    marker_color=_KIND_COLORS.get(kind, "#54A24B"), customdata=hover,
                    hovertemplate=(
                        f"%{{x}}<br>%{{y:{fmt}}} ± %{{error_y.array:{fmt}}}<br>%{{customdata}}<extra></extra>"
                    ),
                ),
                row=1, col=col,
            )
    if not fig.data:
        return None
    fig.update_xaxes(categoryorder="array", categoryarray=names, tickangle=-30)
    if lows:  # zoom onto the accuracies: differences of a fraction of a percent matter here
        span = max(highs) - min(lows)
        lo, hi = max(0.0, min(lows) - max(0.01, span)), min(1.0, max(highs) + max(0.005, 0.2 * span))
        fig.update_yaxes(range=[lo, hi], row=1, col=1)
    fig.update_yaxes(title_text="test accuracy", tickformat=".1%", row=1, col=1)
    fig.update_yaxes(title_text="decision step", rangemode="tozero", row=1, col=2)
    fig.update_layout(barmode="overlay")
    return _style(fig, 430)


def slug(text: str) -> str:
    """A stable, id-safe slug of a name."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"
