"""Read run records (``runs/<run_id>/``) and ablation tables without ever raising on bad content.

A run directory holds ``meta.json``, ``config.yaml``, ``metrics.jsonl`` (one JSON object per epoch),
``summary.json`` (only once the run finished) and ``checkpoints/``. :func:`load_run` turns one into a
:class:`RunRecord` whose ``status`` is the run's own status (``finished``, ``running``, ``failed``,
``interrupted``, ``pruned``) or one of ours: ``incomplete`` (a file the status promises is missing) or ``corrupt``
(unreadable content, or not a run at all); ``problem`` says what is wrong in words.

Dependency-light on purpose (json, yaml, pathlib): the ablation runner and the sweep code import it too.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "RUN_STATUSES",
    "RUN_FILES",
    "RunRecord",
    "load_run",
    "looks_like_run",
    "find_runs",
    "flatten",
    "config_differences",
    "final_metrics",
    "load_ablation",
]

#: statuses a run writes into meta.json itself
RUN_STATUSES = ("running", "finished", "failed", "interrupted", "pruned")
#: files whose presence makes a directory look like a run
RUN_FILES = ("meta.json", "config.yaml", "metrics.jsonl", "summary.json")
_SEVERITY = {"incomplete": 1, "corrupt": 2}


@dataclass
class RunRecord:
    """One run as read from disk; fields are empty (never missing) when a file could not be read."""

    path: Path
    run_id: str
    meta: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # flattened: dotted key -> value
    epochs: list = field(default_factory=list)  # one dict per metrics.jsonl line, file order
    summary: dict = field(default_factory=dict)
    status: str = "corrupt"  # finished | running | failed | interrupted | incomplete | corrupt
    problem: str | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.run_id)

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset") or self.config.get("data.dataset") or "")

    @property
    def components(self) -> dict:
        comp = self.meta.get("components")
        return comp if isinstance(comp, dict) else {}

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with the record (its run may still have failed)."""
        return self.status not in _SEVERITY

    def series(self, key: str) -> tuple[list, list]:
        """(epochs, values) of one metrics.jsonl key, skipping lines that lack it or hold a non-number."""
        xs, ys = [], []
        for i, row in enumerate(self.epochs):
            v = row.get(key)
            if _is_number(v):
                e = row.get("epoch")
                xs.append(e if _is_number(e) else i)
                ys.append(float(v))
        return xs, ys


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def looks_like_run(path: Path) -> bool:
    """A directory holding at least one of the run files."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in RUN_FILES)


def flatten(tree: Any, prefix: str = "") -> dict:
    """Nested dicts -> {"a.b.c": value}; lists and scalars are leaves; an empty dict is a leaf too."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree} if prefix else {}
    out: dict = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key))
    return out


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"{path.name} unreadable ({type(e).__name__}: {_short(e)})"


def _short(e: Exception, n: int = 120) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def _read_metrics(path: Path) -> tuple[list, str | None, bool]:
    """Good lines, a problem text, and whether the damage goes beyond a truncated last line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        return [], f"metrics.jsonl unreadable ({_short(e)})", True
    rows, bad = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(n)
    if not bad:
        return rows, None, False
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    if bad == [last]:
        return rows, f"metrics.jsonl: last line {last} truncated (kept {len(rows)} epochs)", False
    shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    return rows, f"metrics.jsonl: {len(bad)} unparsable line(s) ({shown}); kept {len(rows)} epochs", True


def load_run(path: str | Path) -> RunRecord:
    """Read one run directory. Never raises on bad content: problems end up in ``status``/``problem``."""
    path = Path(path)
    rec = RunRecord(path=path, run_id=path.name or str(path))
    problems: list[str] = []
    worst = 0  # 0 ok, 1 incomplete, 2 corrupt

    def note(text: str, severity: int) -> None:
        nonlocal worst
        problems.append(text)
        worst = max(worst, severity)

    try:
        if not path.is_dir():
            rec.problem = "does not exist" if not path.exists() else "not a directory"
            return rec
        if not looks_like_run(path):
            rec.problem = "not a run directory (none of " + ", ".join(RUN_FILES) + ")"
            return rec
        _load_into(rec, note)
    except Exception as e:  # noqa: BLE001 - a report must survive whatever is on disk
        note(f"unexpected error reading the run ({type(e).__name__}: {_short(e)})", 2)

    if worst == 2:
        rec.status = "corrupt"
    elif worst == 1:
        rec.status = "incomplete"
    else:
        rec.status = str(rec.meta.get("status"))
    if rec.status == "failed" and rec.meta.get("error"):
        problems.append(f"error: {rec.meta['error']}")
    rec.problem = "; ".join(problems) or None
    return rec


def _load_into(rec: RunRecord, note) -> None:
    path = rec.path
    meta_file = path / "meta.json"
    if meta_file.is_file():
        meta, err = _read_json(meta_file)
        if err:
            note(err, 2)
        elif not isinstance(meta, dict):
            note(f"meta.json is a {type(meta).__name__}, not an object", 2)
        else:
            rec.meta = meta
            if meta.get("run_id"):
                rec.run_id = str(meta["run_id"])
            if meta.get("status") not in RUN_STATUSES:
                note(f"meta.json: unknown status {meta.get('status')!r}", 2)
    else:
        note("meta.json missing", 1)

    cfg_file = path / "config.yaml"
    if cfg_file.is_file():
        try:
            cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            note(f"config.yaml unreadable ({type(e).__name__}: {_short(e)})", 2)
        else:
            if isinstance(cfg, dict):
                rec.config = flatten(cfg)
            elif cfg is not None:
                note(f"config.yaml is a {type(cfg).__name__}, not a mapping", 2)
            else:
                note("config.yaml empty", 1)
    else:
        note("config.yaml missing", 1)

    metrics_file = path / "metrics.jsonl"
    if metrics_file.is_file():
        rec.epochs, err, severe = _read_metrics(metrics_file)
        if err:
            note(err, 2 if severe else 0)

    summary_file = path / "summary.json"
    if summary_file.is_file():
        summary, err = _read_json(summary_file)
        if err:
            note(err, 2)
        elif not isinstance(summary, dict):
            note(f"summary.json is a {type(summary).__name__}, not an object", 2)
        else:
            rec.summary = summary
    elif rec.meta.get("status") == "finished":
        note("summary.json missing (meta says finished)", 1)


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


def config_differences(records: Sequence[RunRecord], ignore: Iterable[str] = ()) -> list[str]:
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


def _mean(values: Iterable[Any]) -> float | None:
    nums = [float(v) for v in values if _is_number(v)]
    return sum(nums) / len(nums) if nums else None


def final_metrics(rec: RunRecord) -> dict:
    """The headline numbers of a run (None where unknown): test acc, best val acc, decision step,
    mean spikes per neuron over layers, total single-spike violations, energy per inference (nJ) and its ratio
    to the ANN's, wall time and throughput."""
    s, last = rec.summary, (rec.epochs[-1] if rec.epochs else {})

    def num(*vals: Any) -> float | None:
        for v in vals:
            if _is_number(v):
                return float(v)
        return None

    val_best = num(s.get("val/acc_best"), last.get("val/acc_best"))
    if val_best is None:
        accs = rec.series("val/acc")[1]
        val_best = max(accs) if accs else None
    spn = s.get("test/spikes_per_neuron")
    vio = s.get("test/violations")
    vio_nums = [v for v in vio.values() if _is_number(v)] if isinstance(vio, dict) else []
    wall = num(s.get("wall_s"))
    if wall is None:
        times = rec.series("time/epoch_s")[1]
        wall = sum(times) if times else None
    return {
        "test/acc": num(s.get("test/acc")),
        "val/acc_best": val_best,
        "test/decision_step": num(s.get("test/decision_step")),
        "val/decision_step": num(last.get("val/decision_step")),
        "spikes_per_neuron": _mean(spn.values()) if isinstance(spn, dict) else None,
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
    data, err = _read_json(path)
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
