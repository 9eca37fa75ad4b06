"""Experiment tracking: the W&B logger and the Lightning callbacks that fill the run record.

The run record (``runs/<run-id>/``: layout, writes, reads, statuses, summary keys) belongs to ``ttfs_lab.record``;
the callbacks here only call it: :class:`RunRecorder` appends each epoch and records how a run stopped.
W&B is independent of it and writes under ``runs/<run-id>/wandb/`` (offline runs sync with ``wandb sync``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from ttfs_lab.errors import NonFiniteLossError, first_line
from ttfs_lab.record import RunRecord
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
        self.record.stop(status, first_line(exception))


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


class EpochTimer(L.Callback):
    """Logs ``time/epoch_s`` (training part of the epoch) and ``throughput/samples_per_s`` (training samples).

    Lightning runs the epoch's validation inside the training epoch (before ``on_train_epoch_end``), so the
    clock stops while it runs: the figures are training alone."""

    def __init__(self) -> None:
        self._seconds, self._samples = 0.0, 0
        self._since: Optional[float] = None  # when the running training stretch began; None while not training

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._seconds, self._samples, self._since = 0.0, 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch[-1])

    def _pause(self) -> None:
        if self._since is not None:
            self._seconds += time.perf_counter() - self._since
            self._since = None

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._pause()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._since = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._pause()
        pl_module.log("time/epoch_s", self._seconds)
        pl_module.log("throughput/samples_per_s", self._samples * trainer.world_size / max(self._seconds, 1e-9))


class ExceptionCheckpoint(OnExceptionCheckpoint):
    """Lightning's on-exception checkpoint, except after a non-finite loss: those weights are not worth resuming."""

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, NonFiniteLossError):
            super().on_exception(trainer, pl_module, exception)
