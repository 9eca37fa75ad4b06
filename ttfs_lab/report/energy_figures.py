"""Dashboard figures of the operation counts and energy per inference (docs/method.md section 10): accuracy vs
energy with its Pareto front, and the operations of each layer against the ANN of the same layers. Each builder
returns ``None`` when no run has the data (runs recorded before the counts existed)."""

from __future__ import annotations

import plotly.graph_objects as go

from ttfs_lab.record import is_number

from .figures import _esc, _style, pareto_front


def _energy_points(records) -> list[tuple[int, float, float, dict]]:
    """(record index, test accuracy, energy nJ, summary) of the runs that have both."""
    pts = []
    for i, rec in enumerate(records):
        s = rec.summary
        if is_number(s.get("test/acc")) and is_number(s.get("test/energy_nj")) and s["test/energy_nj"] > 0:
            pts.append((i, float(s["test/acc"]), float(s["test/energy_nj"]), s))
    return pts


def energy_pareto(records, colors, labels) -> go.Figure | None:
    """Test accuracy vs energy per inference (log scale), the Pareto front dashed, the ANN of each run's layers
    as a dotted vertical line."""
    pts = _energy_points(records)
    if not pts:
        return None
    fig = go.Figure()
    front = pareto_front([(acc, e) for _, acc, e, _ in pts])
    if front:
        fig.add_trace(go.Scatter(
            x=[pts[k][2] for k in front], y=[pts[k][1] for k in front], mode="lines+markers", name="Pareto front",
            line=dict(color="#444", width=1.5, dash="dash"),
            marker=dict(symbol="circle-open", size=20, color="#444", line=dict(width=2)), hoverinfo="skip"))
    for k, (i, acc, e, s) in enumerate(pts):
        star = " ★ Pareto" if k in front else ""
        ratio = s.get("test/energy_ratio_ann")
        exit_e = s.get("test/energy_exit_nj")
        extra = (f"<br>{ratio:.3f} of the ANN's" if is_number(ratio) else "") + (
            f"<br>{exit_e:,.1f} nJ with early exit" if is_number(exit_e) else "")
        fig.add_trace(go.Scatter(
            x=[e], y=[acc], mode="markers", name=_esc(labels[i]),
            marker=dict(size=12, color=colors[i], line=dict(color="white", width=1)),
            hovertemplate=f"{_esc(labels[i])}{star}<br>%{{x:,.1f}} nJ / inference{extra}<br>test acc %{{y:.2%}}"
                          "<extra></extra>"))
    anns = sorted({round(float(s["test/ann_energy_nj"]), 3) for *_, s in pts if is_number(s.get("test/ann_energy_nj"))})
    for ann in anns:
        fig.add_vline(x=ann, line=dict(color="#c0392b", dash="dot", width=1),
                      annotation_text=f"ANN, same layers: {ann:,.0f} nJ", annotation_position="top left")
    fig.update_xaxes(title_text="energy per inference (nJ, log scale; lower = cheaper)", type="log")
    fig.update_yaxes(title_text="test accuracy", tickformat=".1%")
    return _style(fig, 420, top=30)


def layer_operations(records, colors, labels) -> go.Figure | None:
    """Operations per inference of each synaptic layer (ACs where the input is spikes, MACs where it is analog),
    one bar per run, next to the ANN's MACs for the same layer (log scale)."""
    fig = go.Figure()
    layers: list[str] = []
    ann: dict[str, float] = {}
    for rec, color, label in zip(records, colors, labels):
        per_layer = rec.summary.get("test/ops_per_layer")
        if not isinstance(per_layer, dict):
            continue
        rows = [(str(k), v) for k, v in per_layer.items() if isinstance(v, dict) and is_number(v.get("ops"))]
        if not rows:
            continue
        layers += [k for k, _ in rows if k not in layers]
        for k, v in rows:
            if is_number(v.get("ann_mac")):
                ann.setdefault(k, float(v["ann_mac"]))
        fig.add_trace(go.Bar(
            x=[_esc(k) for k, _ in rows], y=[float(v["ops"]) for _, v in rows], name=_esc(label),
            marker_color=color,
            customdata=[[str(v.get("kind", "?")).upper(), float(v.get("ops_exit") or 0.0)] for _, v in rows],
            hovertemplate=(f"{_esc(label)}<br>%{{x}}: %{{y:,.0f}} %{{customdata[0]}}s / inference"
                           "<br>%{customdata[1]:,.0f} with early exit<extra></extra>")))
    if not fig.data:
        return None
    if ann:
        names = [k for k in layers if k in ann]
        fig.add_trace(go.Bar(
            x=[_esc(k) for k in names], y=[ann[k] for k in names], name="ANN (same layers), MACs",
            marker=dict(color="rgba(0,0,0,0)", line=dict(color="#444", width=1.5)),
            hovertemplate="ANN<br>%{x}: %{y:,.0f} MACs / inference<extra></extra>"))
    fig.update_xaxes(title_text="synaptic layer", categoryorder="array", categoryarray=[_esc(k) for k in layers])
    fig.update_yaxes(title_text="operations per inference (log scale)", type="log")
    fig.update_layout(barmode="group", bargap=0.2)
    return _style(fig, 420, top=20)
