"""Layout, ids, atomic writes and tolerant reads of the run record (see ``ttfs_lab.record``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Optional

from ttfs_lab.errors import ConfigError

META, CONFIG, METRICS, SUMMARY, CHECKPOINTS = "meta.json", "config.yaml", "metrics.jsonl", "summary.json", "checkpoints"
#: files whose presence makes a directory look like a run
RUN_FILES = (META, CONFIG, METRICS, SUMMARY)
#: statuses a run writes into meta.json itself; all but ``running`` end it
RUN_STATUSES = ("running", "finished", "failed", "interrupted", "pruned")
STOP_STATUSES = ("failed", "interrupted", "pruned")


# --- ids and times -----------------------------------------------------------------------------------------
def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(dataset: str) -> str:
    return f"{dataset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not run_id or any(c in run_id for c in "/\\ ") or run_id.startswith("."):
        raise ConfigError(f"run.id={run_id!r} is not valid; use letters, digits, '-', '_' or '.'")
    return run_id


# --- atomic writes -----------------------------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_jsonable))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Replace ``path`` with one JSON object per line, atomically."""
    write_text(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows))


def _jsonable(value: Any) -> Any:
    """Tensors and arrays as lists (0-d ones as numbers), anything else as its text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


# --- tolerant reads ----------------------------------------------------------------------------------------
def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def short_text(e: Exception, n: int = 120) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def read_json(path: Path) -> tuple[Any, Optional[str]]:
    """(content, None), or (None, a problem text) when the file cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"{Path(path).name} unreadable ({type(e).__name__}: {short_text(e)})"


def read_metrics(path: Path) -> tuple[list[dict], Optional[str], bool]:
    """The good lines of a metrics.jsonl (objects, in file order), a problem text, and whether the damage goes
    beyond a last line cut by a crash. A missing file is no problem: no epochs yet."""
    path = Path(path)
    if not path.is_file():
        return [], None, False
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        return [], f"{METRICS} unreadable ({short_text(e)})", True
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
        return rows, f"{METRICS}: last line {last} truncated (kept {len(rows)} epochs)", False
    shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    return rows, f"{METRICS}: {len(bad)} unparsable line(s) ({shown}); kept {len(rows)} epochs", True


def flatten(tree: Any, prefix: str = "") -> dict:
    """Nested dicts -> {"a.b.c": value}; lists and scalars are leaves; an empty dict is a leaf too."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree} if prefix else {}
    out: dict = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key))
    return out
