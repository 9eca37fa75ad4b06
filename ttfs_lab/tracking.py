"""Experiment tracking: the local run record (``runs/<run-id>/``) and the W&B logger.

The run record is independent of W&B and is what ``compare``, ``ablate`` and ``sweep`` read:

    runs/<run-id>/meta.json      id, dataset, group, tags, components, status, start / end, error
    runs/<run-id>/config.yaml    the resolved config (re-runnable with ``ttfs-lab fit --config``)
    runs/<run-id>/metrics.jsonl  one line per validation epoch
    runs/<run-id>/summary.json   final figures (test metrics, curves, histograms), once finished
    runs/<run-id>/checkpoints/   best.ckpt (by val/acc), last.ckpt, on_exception.ckpt
    runs/<run-id>/wandb/         the W&B run files (offline runs can be synced with ``wandb sync``)

Every file is written atomically (temp file + rename), so a crash never leaves a half-written record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from ttfs_lab.errors import ConfigError, NonFiniteLossError
from ttfs_lab.registry import check_choice

WANDB_MODES = ("auto", "online", "offline", "disabled")


@dataclass
class RunSettings:
    """Where and how a run is recorded.

    Args:
        dir: folder of run records.
        id: run id (folder name); None = ``<dataset>-<time>-<random>``. Re-using an id resumes that run.
        resume: ``auto`` (resume an unfinished run with this id from its newest checkpoint) | ``never``.
        wandb: ``auto`` (online when W&B credentials exist, else offline) | online | offline | disabled.
        project: W&B project. group: W&B group (sweeps and ablations set it). tags: extra W&B tags.
        test: after fit, test the checkpoint that was best on validation.
    """

    dir: str = "runs"
    id: Optional[str] = None
    resume: str = "auto"
    wandb: str = "auto"
    project: str = "ttfs-lab"
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    test: bool = True


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(dataset: str) -> str:
    return f"{dataset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_jsonable))


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


class RunRecord:
    """The files of one run; all writes are atomic and happen on rank zero only."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    @property
    def meta(self) -> dict:
        return read_json(self.path / "meta.json", {}) or {}

    @property
    def status(self) -> Optional[str]:
        return self.meta.get("status")

    @rank_zero_only
    def update_meta(self, **fields) -> None:
        write_json(self.path / "meta.json", {**self.meta, **fields})

    @rank_zero_only
    def write_config(self, text: str) -> None:
        write_text(self.path / "config.yaml", text)

    @rank_zero_only
    def write_summary(self, summary: dict) -> None:
        write_json(self.path / "summary.json", summary)

    def epochs(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
        return rows

    @rank_zero_only
    def append_epoch(self, row: dict) -> None:
        rows = [r for r in self.epochs() if r.get("epoch") != row.get("epoch")] + [row]
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows))

    @rank_zero_only
    def truncate_epochs(self, from_epoch: int) -> None:
        """Drop epochs >= ``from_epoch`` (they are re-run after a resume)."""
        rows = [r for r in self.epochs() if r.get("epoch", -1) < from_epoch]
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def resume_checkpoint(self) -> Optional[str]:
        """The newest of last.ckpt / on_exception.ckpt, or None."""
        candidates = [p for p in (self.checkpoints / "last.ckpt", self.checkpoints / "on_exception.ckpt") if p.exists()]
        return str(max(candidates, key=lambda p: p.stat().st_mtime)) if candidates else None


class RunRecorder(L.Callback):
    """Writes the per-epoch metrics and the run status into the run record."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_train_start(self, trainer, pl_module) -> None:
        self.record.truncate_epochs(trainer.current_epoch)  # a resumed run re-runs from here

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """After validation and the module's own epoch-end logging (Lightning runs validation inside the epoch)."""
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                row[key] = value.item()
        self.record.append_epoch(row)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        if type(exception).__name__ == "TrialPruned":  # optuna's, raised by its pruning callback
            status = "pruned"
        message = str(exception).splitlines()[0] if str(exception) else type(exception).__name__
        self.record.update_meta(status=status, ended=now(), error=message)


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` -> online with credentials (WANDB_API_KEY or a netrc entry), offline otherwise.
    ``WANDB_MODE`` in the environment wins (tests set it to ``disabled``)."""
    check_choice("run.wandb", mode, WANDB_MODES)
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "online" if "api.wandb.ai" in netrc.read_text() else "offline"
    except OSError:
        return "offline"


def make_wandb_logger(settings: RunSettings, run_id: str, run_dir: Path, config: dict, tags: list[str]):
    """A ``WandbLogger`` writing under the run folder, or None when W&B is disabled."""
    mode = resolve_wandb_mode(settings.wandb)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    run_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=settings.project, name=run_id, id=run_id, save_dir=str(run_dir), mode=mode,
                       group=settings.group, tags=tags, config=config, resume="allow")


class WandbMedia(L.Callback):
    """Logs what scalars cannot show to W&B: spike-time histograms, the accuracy-vs-step curve and the operations
    per layer (docs/method.md section 10)."""

    def on_validation_end(self, trainer, pl_module) -> None:  # after the module's epoch-end computed results
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "test")

    @rank_zero_only
    def _log(self, trainer, pl_module, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        results = pl_module.results.get(stage)
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not results or not loggers:
            return
        import numpy as np
        import wandb

        T = pl_module.T
        edges = np.arange(1, T + 3, dtype=float) - 0.5  # bins 1..T, T+1 = silent
        media = {f"{stage}/spike_time/{layer}": wandb.Histogram(np_histogram=(np.asarray(counts), edges))
                 for layer, counts in results["hist"].items()}
        table = wandb.Table(data=[[k + 1, a] for k, a in enumerate(results["acc_vs_step"])], columns=["step", "acc"])
        media[f"{stage}/acc_vs_step"] = wandb.plot.line(table, "step", "acc", title=f"{stage} accuracy vs step")
        if results.get("ops"):
            rows = [[layer, r["kind"], r["ops"], r["ops_exit"], r["ann_mac"]]
                    for layer, r in results["ops"]["layers"].items()]
            ops = wandb.Table(data=rows, columns=["layer", "kind", "ops", "ops_exit", "ann_mac"])
            media[f"{stage}/ops_per_layer"] = wandb.plot.bar(ops, "layer", "ops",
                                                             title=f"{stage} operations per inference")
        for lg in loggers:
            lg.experiment.log({**media, "trainer/global_step": trainer.global_step})


def components(hparams) -> dict:
    """The switches of the paper's ablation (init, norm, affine, decoder, pooling) from the model config."""
    spec = hparams.get("spec") or ""
    pool = hparams.get("pool") or ("max" if "mp" in spec.split("-") or "-mp" in spec else "avg")
    return {"init": hparams.get("init"), "norm": bool(hparams.get("norm")), "affine": bool(hparams.get("affine")),
            "decoder": hparams.get("decoder"), "pool": pool}


def component_tags(comp: dict) -> list[str]:
    return [f"init:{comp['init']}", f"norm:{'on' if comp['norm'] else 'off'}",
            f"affine:{'on' if comp['affine'] else 'off'}", f"decoder:{comp['decoder']}", f"pool:{comp['pool']}"]


def check_run_id(run_id: str) -> str:
    if not run_id or any(c in run_id for c in "/\\ ") or run_id.startswith("."):
        raise ConfigError(f"run.id={run_id!r} is not valid; use letters, digits, '-', '_' or '.'")
    return run_id


class EpochTimer(L.Callback):
    """Logs ``time/epoch_s`` (training part of the epoch) and ``throughput/samples_per_s`` (training samples)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        import time

        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch[-1])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        import time

        seconds = time.perf_counter() - self._start
        pl_module.log("time/epoch_s", seconds)
        pl_module.log("throughput/samples_per_s", self._samples * trainer.world_size / max(seconds, 1e-9))


class ExceptionCheckpoint(OnExceptionCheckpoint):
    """Lightning's on-exception checkpoint, except after a non-finite loss: those weights are not worth resuming."""

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, NonFiniteLossError):
            super().on_exception(trainer, pl_module, exception)
