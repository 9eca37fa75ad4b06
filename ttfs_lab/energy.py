"""Operation counts and energy per inference in the run record, the logs and the printed line (docs/method.md
section 10).

``SynapticOperations.compute()`` (``ttfs_lab.metrics``) gives the figures of one stage; ``summary_figures`` names
them for ``summary.json`` (``<stage>/synops_ac``, ``<stage>/energy_nj``, ``<stage>/energy_ratio_ann``, ...),
``logged_figures`` for the loggers (the same scalars, plus ``<stage>/ac/<layer>`` or ``<stage>/mac/<layer>``),
and ``energy_line`` writes them as the tail of the line ``fit`` prints last.
"""

from __future__ import annotations

from typing import Any, Optional

# summary.json key suffix -> (key of SynapticOperations.compute(), scale)
_SCALARS = {
    "synops_ac": ("ac", 1.0), "synops_mac": ("mac", 1.0),
    "synops_ac_exit": ("ac_exit", 1.0), "synops_mac_exit": ("mac_exit", 1.0), "ann_mac": ("ann_mac", 1.0),
    "energy_nj": ("energy_pj", 1e-3), "energy_exit_nj": ("energy_pj_exit", 1e-3),
    "ann_energy_nj": ("ann_energy_pj", 1e-3),
    "energy_ratio_ann": ("energy_ratio_ann", 1.0), "energy_ratio_ann_exit": ("energy_ratio_ann_exit", 1.0),
}


def summary_figures(stage: str, ops: Optional[dict]) -> dict[str, Any]:
    """The summary.json keys of one stage: per-inference totals, energies (nJ), ratios to the ANN, and
    ``<stage>/ops_per_layer`` (layer -> kind ``ac`` | ``mac``, ``ops``, ``ops_exit``, ``ann_mac``)."""
    if not ops:
        return {}
    out: dict[str, Any] = {f"{stage}/{name}": ops[key] * scale for name, (key, scale) in _SCALARS.items()}
    out[f"{stage}/ops_per_layer"] = ops["layers"]
    return out


def logged_figures(stage: str, ops: dict) -> dict[str, float]:
    """The scalars to log: the summary's totals, and each layer's operations (with and without early exit)."""
    out = {k: v for k, v in summary_figures(stage, ops).items() if not k.endswith("/ops_per_layer")}
    for layer, row in ops["layers"].items():
        out[f"{stage}/{row['kind']}/{layer}"] = row["ops"]
        out[f"{stage}/{row['kind']}_exit/{layer}"] = row["ops_exit"]
    return out


def format_energy(pj: float) -> str:
    """An energy in pJ with a readable unit: ``840 pJ``, ``3.71 nJ``, ``21.4 uJ``."""
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def energy_line(summary: dict, stage: str = "test") -> Optional[str]:
    """``energy 3.71 uJ per inference (0.174 of the ANN's 21.4 uJ; 2.9 uJ with early exit)``, or None."""
    e, ann = summary.get(f"{stage}/energy_nj"), summary.get(f"{stage}/ann_energy_nj")
    exit_e, ratio = summary.get(f"{stage}/energy_exit_nj"), summary.get(f"{stage}/energy_ratio_ann")
    if not all(isinstance(v, (int, float)) for v in (e, ann, exit_e, ratio)):
        return None
    return (f"energy {format_energy(e * 1e3)} per inference ({ratio:.3f} of the ANN's {format_energy(ann * 1e3)}; "
            f"{format_energy(exit_e * 1e3)} with early exit)")
