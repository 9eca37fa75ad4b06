"""``train(config) -> summary``: the single road for the CLI, sweeps, ablations and tests.

fit: resolve the config, train with validation, then test the checkpoint that was best on validation, and write
the run record. Re-running a run id that did not finish resumes it from its newest checkpoint; re-running a
finished one returns its summary without training again. validate / test: evaluate ``--ckpt_path`` into a run
record of its own (``stage`` in its meta.json), with the summary keys ``fit`` writes for that stage. Every file of
the record is written through ``ttfs_lab.record``.

Before the data is prepared and the Trainer is built (``preflight``, called by the CLI), the checks that need
neither run, so that a user error (a wrong run.id, a missing --ckpt_path, a corrupt data file) is the one line on
stderr and comes at once, not after Lightning's start-up lines or a long download.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence, Union

from jsonargparse import ArgumentError
from lightning.pytorch.utilities import rank_zero_only

from ttfs_lab.energy import energy_line
from ttfs_lab.errors import ConfigError, TTFSLabError, first_line
from ttfs_lab.record import SUMMARY, best_epoch, evaluation_summary, fit_summary, now, spikes_per_neuron

ConfigLike = Union[dict, list[str]]


def make_cli(config: ConfigLike, **kwargs):
    """Parse and instantiate everything; a bad key or value becomes a one-line ``ConfigError``."""
    from ttfs_lab.config import PREPARE_DATA_FLAG, TTFSLabCLI

    import copy
    import logging
    import warnings

    config = copy.deepcopy(config)  # jsonargparse turns nested dicts into Namespaces in place
    seed_log = logging.getLogger("lightning.fabric.utilities.seed")  # "Seed set to N" must not precede an error
    level = seed_log.level  # line (the seed is in the run record's config.yaml)
    seed_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # args are given on purpose, also when sys.argv holds the subcommand
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
            return TTFSLabCLI(args=config, **kwargs)
    except ArgumentError as err:
        raise ConfigError(config_error_line(err)) from None
    except TTFSLabError:
        raise
    except ValueError as err:  # a value the model or network rejects while being built (T, spec, decoder, ...)
        if getattr(err, PREPARE_DATA_FLAG, False):  # a bug in prepare_data, not a bad setting: its traceback
            raise
        cause = _user_error_in(err)
        if cause is not None:  # our own one-line error, wrapped by jsonargparse (e.g. in a Union's "Errors:")
            raise ConfigError(f"invalid configuration: {first_line(cause)}") from None
        raise ConfigError(config_error_line(err)) from None
    finally:
        seed_log.setLevel(level)


def _user_error_in(err: BaseException):
    """The first ``TTFSLabError`` in the exception's chain (cause / context), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, TTFSLabError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def config_error_line(err: Exception) -> str:
    """One line from jsonargparse's multi-line error: the key, then its most specific complaint."""
    skip = ("Does not validate", "Subtypes:", "Errors:", "Expected a <class 'NoneType'>", "Given value")
    lines = [l.strip(" -") for l in str(err).splitlines() if l.strip()]
    head = lines[0].rstrip(":") if lines else type(err).__name__
    details = [l for l in lines[1:] if not l.startswith(skip)]
    message = f"{head}: {' '.join(details)}" if details else head
    if head == 'Parser key "data"':
        from ttfs_lab.data import DATAMODULES

        names = ", ".join(f"ttfs_lab.data.{cls.__name__}" for cls in DATAMODULES.values())
        message += f" (data.class_path is one of: {names})"
    return f"invalid configuration: {message}"


def train(config: ConfigLike, stage: str = "fit", callbacks: Sequence = ()) -> dict[str, Any]:
    """Run ``stage`` (fit | validate | test) for a config (a dict as in configs/*.yaml, or CLI arguments).

    ``callbacks`` are extra Lightning callbacks that cannot live in a config file (e.g. an Optuna pruning
    callback holding its trial)."""
    cli = make_cli(config, extra_callbacks=list(callbacks), preflight=lambda built: preflight(built, stage))
    if stage == "fit":
        return fit(cli)
    return evaluate(cli, stage)


def preflight(cli, stage: str) -> bool:
    """The checks of ``stage`` that need neither the data nor the Trainer (``ConfigError``); True when the stage
    reads the data, False for a finished fit (``run.resume=auto``), which returns its summary. The CLI calls it
    before it prepares the data and builds the Trainer; ``fit`` and ``evaluate`` call it again (it only reads)."""
    record, settings = cli.record, cli.settings
    if stage != "fit" and cli.config.get("ckpt_path") is None:
        raise ConfigError(f"`ttfs-lab {stage}` needs --ckpt_path (e.g. runs/<run-id>/checkpoints/best.ckpt)")
    meta = _check_stage(cli, stage)
    if stage != "fit":
        return True
    if settings.resume == "auto" and record.finished_summary() is not None:
        return False
    if meta and settings.resume == "never":
        raise ConfigError(f"run.id={cli.run_id} exists in {record.path}; choose another run.id or set run.resume=auto")
    return True


def fit(cli) -> dict[str, Any]:
    """Train, test the best checkpoint, write the record; returns the summary (``best_epoch``: what a sweep needs)."""
    record, settings, trainer = cli.record, cli.settings, cli.trainer
    if not preflight(cli, "fit"):
        print(f"run {cli.run_id} already finished; its summary: {record.path / SUMMARY}")
        return record.finished_summary()
    meta = record.meta
    ckpt = cli.config.get("ckpt_path")
    if ckpt is None and settings.resume == "auto" and meta:
        ckpt = record.resume_checkpoint()
    record.start(**_description(cli, "fit"), resumed_from=ckpt)
    record.write_config(cli.config_text)
    if ckpt and trainer.is_global_zero:
        print(f"resuming run {cli.run_id} from {ckpt}")
    elif trainer.is_global_zero:
        print(f"run {cli.run_id}: record in {record.path} (resume after a crash with --run.id {cli.run_id})")
    start = time.perf_counter()
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    fit_seconds = time.perf_counter() - start
    scalars = _scalars(trainer.callback_metrics)  # testing resets them
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if settings.test:
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or None, verbose=False)
    summary = fit_summary(cli.model.results, {**scalars, **_scalars(trainer.callback_metrics)},
                          epochs=trainer.current_epoch, best_checkpoint=best, best_epoch=best_epoch(record.epochs()),
                          fit_s=fit_seconds, wall_s=time.perf_counter() - start)
    record.finish(summary)
    _finish_loggers(trainer)
    print_summary(cli.run_id, summary)
    return summary


def evaluate(cli, stage: str) -> dict[str, Any]:
    """validate / test a checkpoint (``--ckpt_path``) into a run record of its own; prints and returns the figures
    (the same keys and shapes as after ``fit``)."""
    record, trainer = cli.record, cli.trainer
    preflight(cli, stage)
    ckpt = cli.config.get("ckpt_path")
    record.start(**_description(cli, stage, name=f"{stage} {ckpt}"), checkpoint=str(ckpt), started=now())
    record.write_config(cli.config_text)
    if trainer.is_global_zero:
        print(f"{stage} {ckpt}: record in {record.path}")
    start = time.perf_counter()
    getattr(trainer, stage)(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    prefix = "val" if stage == "validate" else "test"
    loss = _scalars(trainer.callback_metrics).get(f"{prefix}/loss")
    summary = evaluation_summary(prefix, cli.model.results.get(prefix), loss, str(ckpt), time.perf_counter() - start)
    record.finish(summary)
    _finish_loggers(trainer)
    print_summary(cli.run_id, summary, prefix)
    return summary


def _check_stage(cli, stage: str) -> dict:
    """The record's meta; a record of another command (a fit's, an evaluation's) is never overwritten."""
    record, meta = cli.record, cli.record.meta
    if meta and record.stage != stage:
        raise ConfigError(f"run.id={cli.run_id} holds the record of a `{record.stage}` run in {record.path}; "
                          f"`ttfs-lab {stage}` writes a record of its own: choose another run.id")
    return meta


def _description(cli, stage: str, name: Optional[str] = None) -> dict[str, Any]:
    """The meta.json fields that say what a run is."""
    return dict(run_id=cli.run_id, name=name or cli.run_id, dataset=cli.model.hparams.dataset, stage=stage,
                group=cli.settings.group, tags=cli.tags, components=cli.components, T=cli.model.T)


def _scalars(metrics: dict) -> dict[str, float]:
    """Lightning's logged one-element values as floats."""
    import torch

    return {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor) or v.numel() == 1}


def _finish_loggers(trainer) -> None:
    for logger in trainer.loggers:
        logger.finalize("success")
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass


@rank_zero_only
def print_summary(run_id: str, summary: dict, stage: str = "test") -> None:
    acc, step = summary.get(f"{stage}/acc"), summary.get(f"{stage}/decision_step")
    if acc is None:
        return
    spikes, energy = spikes_per_neuron(summary, stage), energy_line(summary, stage)
    print(f"[{run_id}] {stage} accuracy {acc:.4f} | mean decision step {step:.2f} | spikes per neuron "
          f"{'-' if spikes is None else round(spikes, 4)}" + (f" | {energy}" if energy else ""))
