"""One trial = one ``train(config)`` run; a worker = ``study.optimize`` over its share of the trials.

The trial's config is the base config (with the command's overrides) plus the trial's parameters, with
``run.id = <study>-t<number>``, ``run.group = <study>`` and tags ``sweep``, ``study:<study>``, ``trial:<n>``.
Its value is the best validation accuracy, from what ``train`` returns (``best_epoch``: the metrics.jsonl row of
the first epoch with the highest ``val/acc``, the epoch of the checkpoint that ``fit`` tests). For ``acc_latency``
the second value is the mean decision step ``val/decision_step`` of that same epoch (so both values describe one
model); for ``acc_energy`` (``acc_energy_exit``) the energy per inference ``val/energy_nj`` (``val/energy_exit_nj``,
with early exit; docs/method.md section 10) of that epoch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from ttfs_lab.errors import first_line
from ttfs_lab.overrides import apply
from ttfs_lab.sweep.progress import EpochProgress, Progress
from ttfs_lab.sweep.space import Knob, Space, build_pruner, build_sampler
from ttfs_lab.sweep.storage import file_lock, open_storage, worker_identity

MAX_CONSECUTIVE_FAILURES = 3


@dataclass
class Plan:
    """Everything a worker needs (the parent writes it as JSON for worker processes)."""

    study: str
    storage: str
    space: Space
    base: dict  # the base config with overrides, epochs, run.dir and run.wandb applied
    prune: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))  # knobs become dicts, choices lists

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        data = json.loads(text)
        space = data.pop("space")
        space["knobs"] = [Knob(**{**k, "choices": tuple(k["choices"])}) for k in space["knobs"]]
        return cls(space=Space(**space), **data)


def run_id(study: str, number: int) -> str:
    return f"{study}-t{number:04d}"


def trial_config(plan: Plan, params: dict, number: int) -> dict:
    knobs = {k.name: k for k in plan.space.knobs}
    config = apply(plan.base, {knobs[name].target: value for name, value in params.items()})
    run = config.setdefault("run", {})
    run.update(id=run_id(plan.study, number), group=plan.study, resume="never",
               tags=[*(run.get("tags") or []), "sweep", f"study:{plan.study}", f"trial:{number}"])
    # the sweep prints one line per trial epoch (sweep/progress.py); Lightning's bars would interleave with them
    (config.get("trainer") or config.setdefault("trainer", {})).setdefault("enable_progress_bar", False)
    return config


def best_figures(summary: dict) -> tuple[Optional[float], dict, Optional[int]]:
    """(val accuracy, that epoch's logged figures, epoch) of the summary's ``best_epoch``; without one (no epoch
    recorded), the summary's best accuracy and the summary itself."""
    best = summary.get("best_epoch")
    if isinstance(best, dict) and isinstance(best.get("val/acc"), (int, float)):
        return float(best["val/acc"]), best, best.get("epoch")
    return summary.get("val/acc_best"), summary, None


def prepare_data(config: dict) -> None:
    """Download / build the trial's data under a lock in its data folder: two workers may start the same
    dataset (e.g. the DVS frame cache for a new T) at once; the second then finds it ready."""
    import importlib

    data = config.get("data") or {}
    module, _, name = str(data.get("class_path", "")).rpartition(".")
    if not module:
        return
    dm = getattr(importlib.import_module(module), name)(**(data.get("init_args") or {}))
    with file_lock(Path(getattr(dm, "data_dir", "data")) / ".ttfs-lab-prepare.lock"):
        dm.prepare_data()


def _finish_wandb(failed: bool) -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)


class Objective:
    def __init__(self, plan: Plan, progress: Optional[Progress] = None) -> None:
        self.plan = plan
        self.progress = progress or Progress(plan.study, plan.space.trials, plan.space.second_value)

    def __call__(self, trial) -> Any:
        import optuna

        from ttfs_lab.train import train

        trial.set_user_attr("worker", worker_identity())  # first: a dead worker's trial can then be failed
        params = {knob.name: knob.suggest(trial) for knob in self.plan.space.knobs}
        config = trial_config(self.plan, params, trial.number)
        run_dir = Path(config["run"].get("dir") or "runs") / config["run"]["id"]
        trial.set_user_attr("run_id", config["run"]["id"])
        trial.set_user_attr("run_dir", str(run_dir))
        print(self.progress.started(trial.number, params, str(run_dir)), flush=True)
        callbacks = [EpochProgress(trial, self.progress)]
        if self.plan.prune and not self.plan.space.multi_objective:
            from optuna_integration import PyTorchLightningPruningCallback

            callbacks.append(PyTorchLightningPruningCallback(trial, monitor="val/acc"))
        failed = True
        try:
            prepare_data(config)
            summary = train(config, callbacks=callbacks)
            failed = False
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, SystemExit) as err:  # Lightning turns Ctrl-C / SIGTERM into SystemExit
            trial.set_user_attr("error", "interrupted")
            raise KeyboardInterrupt from err  # Optuna marks the trial FAIL, then re-raises
        except Exception as err:
            trial.set_user_attr("error", first_line(err))
            raise
        finally:
            _finish_wandb(failed)
        acc, figures, epoch = best_figures(summary)
        if acc is None:
            raise RuntimeError("the run has no validation accuracy: use data.val_fraction > 0 and "
                               "trainer.limit_val_batches > 0")
        trial.set_user_attr("val/acc_best", acc)
        trial.set_user_attr("val/decision_step", figures.get("val/decision_step"))
        trial.set_user_attr("best_epoch", epoch)
        second = self.plan.space.second_value
        value = figures.get(second) if second else None
        if second and second != "val/decision_step":
            trial.set_user_attr(second, value)
        for key in ("test/acc", "test/decision_step", "test/spikes_per_neuron_mean", "test/energy_nj", "epochs",
                    "fit_s"):
            if isinstance(summary.get(key), (int, float)):
                trial.set_user_attr(key, summary[key])
        if self.plan.space.multi_objective:
            if value is None:
                raise RuntimeError(f"the run recorded no {second}")
            return acc, float(value)
        return acc


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_line(study: str, trial, second: Optional[str] = None) -> str:
    """One line for a finished trial (``second``: the name of its second value, default the decision step)."""
    run = trial.user_attrs.get("run_id", "-")
    return f"[sweep {study}] trial {trial.number} {trial_outcome(trial, second)} | run {run}"


def trial_outcome(trial, second: Optional[str] = None) -> str:
    """``COMPLETE val/acc_best 0.9123``, ``PRUNED at epoch 3 (val/acc 0.4000)`` or ``FAIL (its error)``."""
    state = trial.state.name
    values = ""
    if trial.values:
        values = f" val/acc_best {trial.values[0]:.4f}"
        if len(trial.values) > 1:
            second = second or "val/decision_step"
            values += f" | {second} {trial.values[1]:{'.3f' if second == 'val/decision_step' else ',.1f'}}"
    elif state == "PRUNED" and trial.intermediate_values:
        last = max(trial.intermediate_values)
        values = f" at epoch {last} (val/acc {trial.intermediate_values[last]:.4f})"
    error = f" ({trial.user_attrs['error']})" if state == "FAIL" and trial.user_attrs.get("error") else ""
    return f"{state}{values}{error}"


def run_worker(plan: Plan, n_trials: int, index: int = 0) -> int:
    """Run ``n_trials`` trials of the study in this process; returns the process exit status."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(plan.storage)
    sampler = build_sampler(plan.space, seed_offset=index + 7919 * len(_trials(plan, storage)))
    study = optuna.load_study(study_name=plan.study, storage=storage, sampler=sampler,
                              pruner=build_pruner(plan.space))
    failures = []
    progress = Progress(plan.study, n_trials, plan.space.second_value)

    def after_trial(study, trial) -> None:
        print(progress.finished_line(trial, study.get_trials(deepcopy=False)), flush=True)
        failures.append(trial.state.name == "FAIL")
        if len(failures) >= MAX_CONSECUTIVE_FAILURES and all(failures[-MAX_CONSECUTIVE_FAILURES:]):
            print(f"[sweep {plan.study}] worker {index}: {MAX_CONSECUTIVE_FAILURES} trials failed in a row; "
                  "stopping this worker (see the errors above)", flush=True)
            study.stop()

    study.optimize(Objective(plan, progress), n_trials=n_trials, catch=(Exception,), callbacks=[after_trial],
                   gc_after_trial=True)
    return 0


def _trials(plan: Plan, storage) -> list:
    try:
        study_id = storage.get_study_id_from_name(plan.study)
        return storage.get_all_trials(study_id, deepcopy=False)
    except KeyError:
        return []


def worker_main(plan_file: str, n_trials: int, index: int) -> int:
    """Entry of a worker process (``python -m ttfs_lab.sweep --worker PLAN``): SIGTERM stops it like Ctrl-C."""

    stopping = []

    def stop(signum, frame):  # the first SIGINT / SIGTERM stops the worker; more (Ctrl-C from the terminal and
        if not stopping:      # the parent's SIGTERM) must not interrupt the clean-up that records the trial
            stopping.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop)
    plan = Plan.from_json(Path(plan_file).read_text())
    print(f"[sweep {plan.study}] worker {index} (pid {os.getpid()}): {n_trials} trial(s)", flush=True)
    try:
        code = run_worker(plan, n_trials, index)
    except KeyboardInterrupt:
        print(f"[sweep {plan.study}] worker {index} interrupted", flush=True)
        code = 130
    # Everything is stored (the journal fsyncs, run records are written atomically, W&B runs are finished):
    # skip the interpreter's teardown of torch and friends, which takes seconds on a busy machine.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
