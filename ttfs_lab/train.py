"""``train(config) -> summary``: the single road for the CLI, sweeps, ablations and tests.

fit: resolve the config, train with validation, then test the checkpoint that was best on validation, and write
the run record. Re-running a run id that did not finish resumes it from its newest checkpoint; re-running a
finished one returns its summary without training again.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence, Union

from jsonargparse import ArgumentError
from lightning.pytorch.utilities import rank_zero_only

from ttfs_lab.energy import energy_line, summary_figures
from ttfs_lab.errors import ConfigError, TTFSLabError, first_line
from ttfs_lab.tracking import now, read_json

ConfigLike = Union[dict, list[str]]


def make_cli(config: ConfigLike, **kwargs):
    """Parse and instantiate everything; a bad key or value becomes a one-line ``ConfigError``."""
    from ttfs_lab.config import TTFSLabCLI

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
    cli = make_cli(config, extra_callbacks=list(callbacks))
    if stage == "fit":
        return fit(cli)
    return evaluate(cli, stage)


def fit(cli) -> dict[str, Any]:
    record, settings, trainer = cli.record, cli.settings, cli.trainer
    meta = record.meta
    if meta.get("status") == "finished" and (record.path / "summary.json").exists() and settings.resume == "auto":
        print(f"run {cli.run_id} already finished; its summary: {record.path / 'summary.json'}")
        return read_json(record.path / "summary.json", {})
    ckpt = cli.config.get("ckpt_path")
    if ckpt is None and settings.resume == "auto" and meta:
        ckpt = record.resume_checkpoint()
    if meta and settings.resume == "never":
        raise ConfigError(f"run.id={cli.run_id} exists in {record.path}; choose another run.id or set run.resume=auto")
    record.update_meta(run_id=cli.run_id, name=cli.run_id, dataset=cli.model.hparams.dataset, group=settings.group,
                       tags=cli.tags, components=cli.components, T=cli.model.T, status="running",
                       started=meta.get("started", now()), ended=None, error=None, resumed_from=ckpt)
    record.write_config(cli.config_text)
    if ckpt and trainer.is_global_zero:
        print(f"resuming run {cli.run_id} from {ckpt}")
    elif trainer.is_global_zero:
        print(f"run {cli.run_id}: record in {record.path} (resume after a crash with --run.id {cli.run_id})")
    start = time.perf_counter()
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    fit_seconds = time.perf_counter() - start
    fit_metrics = dict(trainer.callback_metrics)  # testing resets them
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if settings.test:
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or None, verbose=False)
    metrics = {**fit_metrics, **trainer.callback_metrics}
    summary = build_summary(cli.model, trainer, metrics, best, fit_seconds, time.perf_counter() - start)
    record.write_summary(summary)
    record.update_meta(status="finished", ended=now())
    _finish_loggers(trainer)
    print_summary(cli.run_id, summary)
    return summary


def evaluate(cli, stage: str) -> dict[str, Any]:
    """validate / test a checkpoint (``--ckpt_path``); prints and returns the figures, changes no run record."""
    ckpt = cli.config.get("ckpt_path")
    if ckpt is None:
        raise ConfigError(f"`ttfs-lab {stage}` needs --ckpt_path (e.g. runs/<run-id>/checkpoints/best.ckpt)")
    getattr(cli.trainer, stage)(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    prefix = "val" if stage == "validate" else "test"
    results = cli.model.results.get(prefix, {})
    summary = {f"{prefix}/{k}": v for k, v in results.items() if k != "ops"}
    summary.update(summary_figures(prefix, results.get("ops")))
    summary[f"{prefix}/loss"] = _scalar(cli.trainer.callback_metrics.get(f"{prefix}/loss"))
    print_summary(cli.run_id, summary, prefix)
    return summary


def build_summary(model, trainer, metrics: dict, best: str, fit_seconds: float, wall_seconds: float) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for stage in ("test", "val"):
        res = model.results.get(stage)
        if not res:
            continue
        summary.update({
            f"{stage}/acc": res["acc"], f"{stage}/loss": _scalar(metrics.get(f"{stage}/loss")),
            f"{stage}/decision_step": res["decision_step"], f"{stage}/acc_vs_step": res["acc_vs_step"],
            f"{stage}/spikes_per_neuron_mean": res["spikes_per_neuron"], f"{stage}/spikes_per_neuron": res["spikes"],
            f"{stage}/silent_fraction": res["silent"], f"{stage}/violations": res["violations"],
            f"{stage}/spike_time_hist": res["hist"],
        })
        summary.update(summary_figures(stage, res.get("ops")))  # operations and energy (docs/method.md section 10)
    summary["val/acc_best"] = _scalar(metrics.get("val/acc_best"))
    summary["train/acc"] = _scalar(metrics.get("train/acc"))
    summary["throughput/samples_per_s"] = _scalar(metrics.get("throughput/samples_per_s"))
    summary["epochs"] = trainer.current_epoch
    summary["fit_s"], summary["wall_s"] = fit_seconds, wall_seconds
    summary["best_checkpoint"] = best
    return summary


def _scalar(value) -> Optional[float]:
    return None if value is None else float(value)


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
    spikes = summary.get(f"{stage}/spikes_per_neuron_mean", summary.get(f"{stage}/spikes_per_neuron"))
    if acc is None:
        return
    energy = energy_line(summary, stage)
    print(f"[{run_id}] {stage} accuracy {acc:.4f} | mean decision step {step:.2f} | spikes per neuron "
          f"{spikes if not isinstance(spikes, float) else round(spikes, 4)}" + (f" | {energy}" if energy else ""))
