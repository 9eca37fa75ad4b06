"""Writing the run record (see ``ttfs_lab.record``): atomic, on rank zero only, statuses through four methods."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

from ttfs_lab.record.files import (CHECKPOINTS, CONFIG, META, METRICS, RUN_STATUSES, STOP_STATUSES, SUMMARY, now, read_json,
                                   read_metrics, write_json, write_jsonl, write_text)


def _on_rank_zero() -> bool:
    """True in the process that writes: global rank 0 (as Lightning set it; else from the launcher's variables)."""
    try:
        from lightning_utilities.core.rank_zero import rank_zero_only

        rank = getattr(rank_zero_only, "rank", None)
    except ImportError:
        rank = None
    if rank is None:
        rank = next((int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID") if k in os.environ), 0)
    return rank == 0


def _rank_zero(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        return method(*args, **kwargs) if _on_rank_zero() else None

    return wrapper


class RunRecord:
    """One run folder, for the code that writes it (train, the Lightning callbacks, the sweep's clean-up)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS

    @property
    def meta(self) -> dict:
        meta, _ = read_json(self.path / META)
        return meta if isinstance(meta, dict) else {}

    @property
    def status(self) -> Optional[str]:
        return self.meta.get("status")

    @property
    def stage(self) -> str:
        return str(self.meta.get("stage") or "fit")  # records written before evaluations had one were fits

    @_rank_zero
    def _write_meta(self, **fields) -> None:
        if fields.get("status") not in (None, *RUN_STATUSES):
            raise ValueError(f"run status {fields['status']!r}; choose one of {', '.join(RUN_STATUSES)}")
        write_json(self.path / META, {**self.meta, **fields})

    def start(self, **fields) -> None:
        """Status ``running`` with the run's description (``fields``); a resumed run keeps its start time."""
        started = fields.pop("started", None) or self.meta.get("started") or now()
        self._write_meta(**fields, status="running", started=started, ended=None, error=None)

    def finish(self, summary: dict) -> None:
        """Write summary.json, then status ``finished``: a finished record always has its summary."""
        self._write_summary(summary)
        self._write_meta(status="finished", ended=now())

    def stop(self, status: str, error: str) -> None:
        """End the run as ``failed`` | ``interrupted`` | ``pruned``, with a one-line error."""
        if status not in STOP_STATUSES:
            raise ValueError(f"stop status {status!r}; choose one of {', '.join(STOP_STATUSES)}")
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        self._write_meta(status=status, ended=now(), error=lines[0] if lines else None)

    def fail_if_running(self, error: str) -> bool:
        """A run whose process died still says ``running``: say ``failed``. True when it did."""
        if self.status != "running":
            return False
        self.stop("failed", error)
        return True

    def finished_summary(self) -> Optional[dict]:
        """The summary of a finished run, or None (not finished, or the summary unreadable)."""
        if self.status != "finished":
            return None
        summary, _ = read_json(self.path / SUMMARY)
        return summary if isinstance(summary, dict) else None

    @_rank_zero
    def write_config(self, text: str) -> None:
        write_text(self.path / CONFIG, text)

    @_rank_zero
    def _write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY, summary)

    def epochs(self) -> list[dict]:
        """The epochs recorded so far (a line cut by a crash is skipped)."""
        return read_metrics(self.path / METRICS)[0]

    @_rank_zero
    def append_epoch(self, row: dict) -> None:
        """Add (or replace, when re-run after a resume) the row of ``row["epoch"]``."""
        self._write_epochs([r for r in self.epochs() if r.get("epoch") != row.get("epoch")] + [row])

    @_rank_zero
    def truncate_epochs(self, from_epoch: int) -> None:
        """Drop epochs >= ``from_epoch`` (they are re-run after a resume)."""
        self._write_epochs([r for r in self.epochs() if r.get("epoch", -1) < from_epoch])

    def _write_epochs(self, rows: list[dict]) -> None:
        write_jsonl(self.path / METRICS, rows)

    def resume_checkpoint(self) -> Optional[str]:
        """The newest of last.ckpt / on_exception.ckpt, or None."""
        candidates = [p for p in (self.checkpoints / "last.ckpt", self.checkpoints / "on_exception.ckpt") if p.exists()]
        return str(max(candidates, key=lambda p: p.stat().st_mtime)) if candidates else None
