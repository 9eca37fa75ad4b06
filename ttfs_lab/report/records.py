"""Comparisons over run records (``runs/<run_id>/``) and ablation tables, never raising on bad content.

Reading one run (layout, tolerant parsing, statuses ``incomplete`` / ``corrupt``) belongs to ``ttfs_lab.record``
(:func:`load_run` -> :class:`RunSnapshot`), re-exported here for the dashboard; this module finds runs, compares
their configs, picks their headline numbers and reads ablation tables.

Dependency-light on purpose (json, yaml, pathlib): the ablation runner and the sweep code import it too.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ttfs_lab.record import (RUN_FILES, RUN_STATUSES, RunSnapshot, flatten, is_number, load_run, looks_like_run,
                             read_json, spikes_per_neuron)

__all__ = [
    "RUN_STATUSES",
    "RUN_FILES",
    "RunSnapshot",
    "load_run",
    "looks_like_run",
    "find_runs",
    "flatten",
    "config_differences",
    "final_metrics",
    "load_ablation",
]


def find_runs(patterns: Iterable[str | Path]) -> list[Path]:
    """Expand run dirs, globs and parent folders into a sorted, de-duplicated list of run directories.

    A pattern that is a run directory is kept; a folder that is not a run expands to its children that
    look like runs (``ablations/`` skipped); a glob expands and each match is treated the same way. An
    explicit path that is neither is kept as-is, so that :func:`load_run` reports it as ``corrupt``
    rather than it vanishing silently. Files (e.g. ``table.json``) are ignored.
    """
    found: dict[Path, Path] = {}

    def add(p: Path, explicit: bool) -> None:
        if looks_like_run(p):
            found.setdefault(p.resolve(), p)
        elif p.is_dir():
            kids = [c for c in sorted(p.iterdir()) if c.name != "ablations" and looks_like_run(c)]
            for c in kids:
                found.setdefault(c.resolve(), c)
            if explicit and not kids and not (p / "table.json").is_file() and p.name != "ablations":
                found.setdefault(p.resolve(), p)
        elif explicit and not p.exists():
            found.setdefault(p.absolute(), p)

    for pat in patterns:
        pat = str(pat)
        if glob.has_magic(pat):
            for m in sorted(glob.glob(pat, recursive=True)):
                add(Path(m), explicit=False)
        else:
            add(Path(pat), explicit=True)
    return sorted(found.values(), key=lambda p: str(p))


_MISSING = "<missing>"


def _hashable(v: Any) -> str:
    try:
        return json.dumps(v, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(v)


def config_differences(records: Sequence[RunSnapshot], ignore: Iterable[str] = ()) -> list[str]:
    """Sorted dotted config keys whose values differ across the records that have a config.

    A key present in some configs and absent from others counts as differing. Keys in ``ignore`` (exact
    or as a dotted prefix) are left out. Fewer than two configs -> no differences.
    """
    configs = [r.config for r in records if r.config]
    if len(configs) < 2:
        return []
    ignore = tuple(ignore)
    keys = sorted({k for c in configs for k in c})
    out = []
    for k in keys:
        if any(k == i or k.startswith(i + ".") for i in ignore):
            continue
        values = {_hashable(c[k]) if k in c else _MISSING for c in configs}
        if len(values) > 1:
            out.append(k)
    return out


def final_metrics(rec: RunSnapshot) -> dict:
    """The headline numbers of a run (None where unknown): test acc, best val acc, decision step, spikes per
    neuron (:func:`ttfs_lab.record.spikes_per_neuron`: the number printed and in the ablation table), total
    single-spike violations, energy per inference (nJ) and its ratio to the ANN's, wall time and throughput."""
    s, last = rec.summary, (rec.epochs[-1] if rec.epochs else {})

    def num(*vals: Any) -> float | None:
        for v in vals:
            if is_number(v):
                return float(v)
        return None

    val_best = num(s.get("val/acc_best"), last.get("val/acc_best"))
    if val_best is None:
        accs = rec.series("val/acc")[1]
        val_best = max(accs) if accs else None
    vio = s.get("test/violations")
    vio_nums = [v for v in vio.values() if is_number(v)] if isinstance(vio, dict) else []
    wall = num(s.get("wall_s"))
    if wall is None:
        times = rec.series("time/epoch_s")[1]
        wall = sum(times) if times else None
    return {
        "test/acc": num(s.get("test/acc")),
        "val/acc_best": val_best,
        "test/decision_step": num(s.get("test/decision_step")),
        "val/decision_step": num(last.get("val/decision_step")),
        "spikes_per_neuron": spikes_per_neuron(s, "test"),
        "violations": sum(vio_nums) if vio_nums else None,
        "energy_nj": num(s.get("test/energy_nj")),  # per inference (docs/method.md section 10)
        "energy_ratio_ann": num(s.get("test/energy_ratio_ann")),
        "wall_s": wall,
        "throughput": num(s.get("throughput/samples_per_s")),
        "epochs": len(rec.epochs),
    }


def load_ablation(path: str | Path) -> dict:
    """Read ``runs/ablations/<study>/table.json`` (or its folder). Never raises: returns
    ``{"study", "path", "dataset", "rows", "problem"}`` with ``rows == []`` and a problem text when the
    table cannot be read. Rows that are not objects are dropped (and counted in ``problem``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "table.json"
    out = {"study": path.parent.name, "path": path, "dataset": "", "rows": [], "problem": None}
    if not path.is_file():
        out["problem"] = "table.json missing"
        return out
    data, err = read_json(path)
    if err:
        out["problem"] = err
        return out
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        out["problem"] = "table.json has no 'rows' list"
        return out
    rows = [r for r in data["rows"] if isinstance(r, dict)]
    if path.name != "table.json":  # a copied table (docs/results/*.json): its own study name, else the file's
        out["study"] = str(data.get("study") or path.stem)
    out["dataset"] = str(data.get("dataset") or "")
    out["rows"] = rows
    if len(rows) != len(data["rows"]):
        out["problem"] = f"{len(data['rows']) - len(rows)} malformed row(s) dropped"
    for k, v in data.items():
        out.setdefault(k, v)
    return out
