"""Reading run records for reports (see ``ttfs_lab.record``): never raises on bad content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ttfs_lab.record.files import (CONFIG, META, METRICS, RUN_FILES, RUN_STATUSES, SUMMARY, flatten, is_number,
                                   read_json, read_metrics, short_text)

_SEVERITY = {"incomplete": 1, "corrupt": 2}


@dataclass
class RunSnapshot:
    """One run as :func:`load_run` read it; fields are empty (never missing) when a file could not be read.
    ``status`` is the run's own (``RUN_STATUSES``) or ``incomplete`` (a file the status promises is missing) or
    ``corrupt`` (unreadable content, or not a run at all); ``problem`` says what is wrong in words."""

    path: Path
    run_id: str
    meta: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # flattened: dotted key -> value
    epochs: list = field(default_factory=list)  # one dict per metrics.jsonl line, file order
    summary: dict = field(default_factory=dict)
    status: str = "corrupt"
    problem: Optional[str] = None

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
            if is_number(v):
                e = row.get("epoch")
                xs.append(e if is_number(e) else i)
                ys.append(float(v))
        return xs, ys


def looks_like_run(path: Path) -> bool:
    """A directory holding at least one of the run files."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in RUN_FILES)


def load_run(path: str | Path) -> RunSnapshot:
    """Read one run directory. Never raises on bad content: problems end up in ``status`` / ``problem``."""
    path = Path(path)
    rec = RunSnapshot(path=path, run_id=path.name or str(path))
    problems: list[str] = []
    worst = 0  # 0 ok, 1 incomplete, 2 corrupt

    def note(text: str, severity: int) -> None:
        nonlocal worst
        problems.append(text)
        worst = max(worst, severity)

    if not path.is_dir():
        rec.problem = "does not exist" if not path.exists() else "not a directory"
        return rec
    if not looks_like_run(path):
        rec.problem = "not a run directory (none of " + ", ".join(RUN_FILES) + ")"
        return rec
    try:
        _read_meta(rec, note)
        _read_config(rec, note)
        _read_results(rec, note)
    except Exception as e:  # noqa: BLE001 - a report must survive whatever is on disk
        note(f"unexpected error reading the run ({type(e).__name__}: {short_text(e)})", 2)
    rec.status = {2: "corrupt", 1: "incomplete"}.get(worst, str(rec.meta.get("status")))
    if rec.status == "failed" and rec.meta.get("error"):
        problems.append(f"error: {rec.meta['error']}")
    rec.problem = "; ".join(problems) or None
    return rec


def _read_meta(rec: RunSnapshot, note) -> None:
    if not (rec.path / META).is_file():
        return note(f"{META} missing", 1)
    meta, err = read_json(rec.path / META)
    if err:
        return note(err, 2)
    if not isinstance(meta, dict):
        return note(f"{META} is a {type(meta).__name__}, not an object", 2)
    rec.meta = meta
    if meta.get("run_id"):
        rec.run_id = str(meta["run_id"])
    if meta.get("status") not in RUN_STATUSES:
        note(f"{META}: unknown status {meta.get('status')!r}", 2)


def _read_config(rec: RunSnapshot, note) -> None:
    cfg_file = rec.path / CONFIG
    if not cfg_file.is_file():
        return note(f"{CONFIG} missing", 1)
    try:
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return note(f"{CONFIG} unreadable ({type(e).__name__}: {short_text(e)})", 2)
    if isinstance(cfg, dict):
        rec.config = flatten(cfg)
    elif cfg is not None:
        note(f"{CONFIG} is a {type(cfg).__name__}, not a mapping", 2)
    else:
        note(f"{CONFIG} empty", 1)


def _read_results(rec: RunSnapshot, note) -> None:
    rec.epochs, err, severe = read_metrics(rec.path / METRICS)
    if err:
        note(err, 2 if severe else 0)
    if not (rec.path / SUMMARY).is_file():
        if rec.meta.get("status") == "finished":
            note(f"{SUMMARY} missing (meta says finished)", 1)
        return
    summary, err = read_json(rec.path / SUMMARY)
    if err:
        note(err, 2)
    elif not isinstance(summary, dict):
        note(f"{SUMMARY} is a {type(summary).__name__}, not an object", 2)
    else:
        rec.summary = summary
