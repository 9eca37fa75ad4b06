"""Per-trial progress of a sweep: trial k of N, its parameters, its best value so far, and the study's best.

Three kinds of line, each ``[sweep <study>] trial <number> (<k> of <N>) ...`` (``number`` is Optuna's trial number,
the one in the run id ``<study>-t<number>``; k counts this command's trials, or a worker's share in its log):

    [sweep s] trial 3 (2 of 24) started | data.init_args.frames=8 model.lr=0.0012 ... | run runs/s-t0003
    [sweep s] trial 3 (2 of 24) epoch 4: val/acc 0.6210 (its best 0.6420)
    [sweep s] trial 3 (2 of 24) COMPLETE val/acc_best 0.6420 | best so far 0.7015 (trial 1) | run s-t0003

A worker process prints them as they happen (``EpochProgress`` stores the figures of every epoch so far on the
trial, as the user attribute ``progress``); the parent of several workers prints the same lines from the study
(``Progress.poll``), so the console shows every trial of every worker.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L

EPOCH_ATTR = "progress"


def params_text(params: dict) -> str:
    return " ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in params.items())


def best_so_far(trials) -> Optional[tuple[float, int]]:
    """(best validation accuracy, its trial number) over the complete trials; accuracy is always value 0."""
    done = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    if not done:
        return None
    best = max(done, key=lambda t: (t.values[0], -t.number))
    return float(best.values[0]), best.number


class Progress:
    """The progress lines of one command's trials (``total`` of them)."""

    def __init__(self, study: str, total: int, second: Optional[str] = None) -> None:
        self.study, self.total, self.second = study, total, second
        self.order: dict[int, int] = {}  # trial number -> k
        self.epochs: dict[int, int] = {}  # trial number -> last epoch printed
        self.finished: set[int] = set()

    def _head(self, number: int) -> str:
        k = self.order.setdefault(number, len(self.order) + 1)
        return f"[sweep {self.study}] trial {number} ({k} of {self.total})"

    def started(self, number: int, params: dict, run: str) -> str:
        return f"{self._head(number)} started | {params_text(params)} | run {run}"

    def epoch(self, number: int, figures: dict) -> str:
        self.epochs[number] = figures["epoch"]
        return (f"{self._head(number)} epoch {figures['epoch']}: val/acc {figures['val/acc']:.4f} "
                f"(its best {figures['best']:.4f})")

    def finished_line(self, trial, trials) -> str:
        from ttfs_lab.sweep.objective import trial_outcome

        self.finished.add(trial.number)
        best = best_so_far(trials)
        so_far = f" | best so far {best[0]:.4f} (trial {best[1]})" if best else " | no trial complete yet"
        return (f"{self._head(trial.number)} {trial_outcome(trial, self.second)}{so_far} | run "
                f"{trial.user_attrs.get('run_id', '-')}")

    def poll(self, study, first: int) -> list[str]:
        """New lines for the trials numbered ``first`` or more (the parent of worker processes, every 0.5 s)."""
        lines = []
        trials = study.get_trials(deepcopy=False)
        for t in sorted(trials, key=lambda t: t.number):
            if t.number < first or t.number in self.finished:
                continue
            if t.number not in self.order and "run_dir" in t.user_attrs:
                lines.append(self.started(t.number, t.params, t.user_attrs["run_dir"]))
            for figures in t.user_attrs.get(EPOCH_ATTR) or []:
                if isinstance(figures, dict) and figures.get("epoch", -1) > self.epochs.get(t.number, -1):
                    lines.append(self.epoch(t.number, figures))
            if t.state.is_finished():
                lines.append(self.finished_line(t, trials))
        return lines


class EpochProgress(L.Callback):
    """After each validation epoch of a trial: print its progress line and store its figures on the trial."""

    def __init__(self, trial, progress: Progress) -> None:
        self.trial, self.progress, self.best, self.history = trial, progress, float("-inf"), []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/acc")
        if trainer.sanity_checking or value is None or not trainer.is_global_zero:
            return
        value = float(value)
        self.best = max(self.best, value)
        figures: dict[str, Any] = {"epoch": pl_module.current_epoch, "val/acc": value, "best": self.best}
        self.history.append(figures)
        self.trial.set_user_attr(EPOCH_ATTR, self.history)  # every epoch: the parent may poll after two
        print(self.progress.epoch(self.trial.number, figures), flush=True)
