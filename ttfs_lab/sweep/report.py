"""End of a sweep command: the best trials (or the Pareto front), parameter importances, the best config as a
ready-to-run YAML, and one W&B run (group = study, job type ``study-summary``) holding all of it."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml

from ttfs_lab.record import write_text
from ttfs_lab.sweep.objective import Plan, _fmt
from ttfs_lab.sweep.space import target_path
from ttfs_lab.tracking import resolve_wandb_mode

TOP = 5
VALUE_NAMES = ("val/acc_best", "val/decision_step")


def value_names(space) -> tuple[str, str]:
    """The names of a study's values: val/acc_best, then what it minimizes (the decision step or the energy)."""
    return VALUE_NAMES[0], space.second_value or VALUE_NAMES[1]


def finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def best_trials(study, multi: bool) -> list:
    """Single objective: the top trials by accuracy; multi-objective: the Pareto front, by accuracy."""
    complete = finished(study)
    if not complete:
        return []
    if multi:
        return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1], t.number))
    return sorted(complete, key=lambda t: (-t.values[0], t.number))[:TOP]


def importances(study, multi: bool, names: tuple[str, str] = VALUE_NAMES) -> dict[str, dict[str, float]]:
    """Parameter importances (fANOVA) per objective, once two trials completed; {} when they cannot be computed."""
    import optuna

    complete = finished(study)
    if len(complete) < 2:
        return {}
    result = {}
    names = names[:2] if multi else names[:1]
    for i, name in enumerate(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(
                    study, target=(lambda t, i=i: t.values[i]) if multi else None)
            result[name] = {k: float(v) for k, v in values.items() if math.isfinite(v)}
        except Exception:  # too few distinct values, a parameter sampled once, ...
            continue
    return result


def best_config(plan: Plan, trial) -> dict:
    """The base config (with the command's overrides) plus the trial's parameters, runnable by ``ttfs-lab fit``."""
    from ttfs_lab.overrides import apply

    knobs = {k.name: k for k in plan.space.knobs}
    config = apply(plan.base, {knobs[k].target if k in knobs else target_path(k): v for k, v in trial.params.items()})
    run = config.setdefault("run", {})
    for key in ("id", "resume"):
        run.pop(key, None)
    run["group"] = plan.study
    run["tags"] = [*(plan.base.get("run", {}).get("tags") or []), "sweep-best", f"study:{plan.study}"]
    return config


def write_best_yaml(plan: Plan, trial, path: Path) -> Path:
    values = " | ".join(f"{n} {v:.4f}" for n, v in zip(value_names(plan.space), trial.values or []))
    run_dir = trial.user_attrs.get("run_dir")
    header = (f"# Best trial {trial.number} of study {plan.study} ({values})\n"
              f"# = the base config with this command's overrides + the trial's parameters; the trial's exact\n"
              f"# resolved config is {run_dir}/config.yaml\n"
              f"# ttfs-lab fit --config {path}   (raise trainer.max_epochs for the final training)\n")
    write_text(path, header + yaml.safe_dump(best_config(plan, trial), sort_keys=False))
    return path


def table(trials: list, multi: bool, knobs: list[str], second: str = VALUE_NAMES[1]) -> str:
    label = "dec.step" if second == VALUE_NAMES[1] else "nJ/inf"
    head = f"{'trial':>5}  {'val acc':>8}  {label:>8}  {'test acc':>8}  run / params"
    lines = [head]
    for t in trials:
        step = t.values[1] if multi else t.user_attrs.get(second)
        test = t.user_attrs.get("test/acc")
        params = " ".join(f"{k}={_fmt(t.params[k])}" for k in knobs if k in t.params)
        lines.append(f"{t.number:>5}  {t.values[0]:>8.4f}  {_num(step):>8}  {_num(test):>8}  "
                     f"{t.user_attrs.get('run_id', '-')}  {params}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def summarize(study, plan: Plan, studies_dir: Path, wandb_mode: str, project: str = "ttfs-lab") -> dict:
    """Print the study's state and best trials, write the best YAML, log the W&B summary; returns the figures."""
    from collections import Counter

    multi = plan.space.multi_objective
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    print(f"\nstudy {plan.study}: {len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + ")")
    best = best_trials(study, multi)
    result: dict[str, Any] = {"counts": dict(counts), "best": [t.number for t in best], "importances": {},
                              "best_yaml": None}
    if not best:
        print("no trial completed yet")
        return result
    names = value_names(plan.space)
    print(f"Pareto front (max {names[0]}, min {names[1]}):" if multi else
          f"best trials by val/acc_best (top {min(TOP, len(best))}):")
    print(table(best, multi, [k.name for k in plan.space.knobs], names[1]))
    result["importances"] = imps = importances(study, multi, names)
    for name, values in imps.items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
        print(f"parameter importance for {name}: {shown}")
    chosen = best[0]  # multi-objective: the most accurate trial of the front
    path = write_best_yaml(plan, chosen, studies_dir / f"{plan.study}-best.yaml")
    result["best_yaml"] = str(path)
    print(f"best configuration (trial {chosen.number}): {path}\n  train it: ttfs-lab fit --config {path}")
    log_to_wandb(study, plan, best, imps, chosen, studies_dir, wandb_mode, project)
    return result


def log_to_wandb(study, plan: Plan, best: list, imps: dict, chosen, studies_dir: Path, mode: str,
                 project: str) -> Optional[str]:
    """One W&B run next to the trials' runs (same group): every trial, the best ones, importances, best params."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    try:
        import wandb

        knobs = [k.name for k in plan.space.knobs]
        multi = plan.space.multi_objective
        second = value_names(plan.space)[1]
        columns = ["trial", "state", "val_acc_best", second.replace("/", "_"), "test_acc", "run_id", *knobs]
        rows = []
        for t in study.get_trials(deepcopy=False):
            step = (t.values[1] if multi and t.values else t.user_attrs.get(second))
            rows.append([t.number, t.state.name, t.values[0] if t.values else None, step,
                         t.user_attrs.get("test/acc"), t.user_attrs.get("run_id"),
                         *[_cell(t.params.get(k)) for k in knobs]])
        studies_dir.mkdir(parents=True, exist_ok=True)
        config = {"study": plan.study, "objective": plan.space.objective, "space": plan.space.path,
                  "best_trial": chosen.number, **{f"best/{k}": v for k, v in chosen.params.items()}}
        with wandb.init(project=project, group=plan.study, job_type="study-summary", name=f"{plan.study}-summary",
                        dir=str(studies_dir), mode=mode, config=config, tags=["sweep", f"study:{plan.study}"]) as run:
            media: dict[str, Any] = {"trials": wandb.Table(columns=columns, data=rows),
                                     "best_trials": wandb.Table(columns=columns,
                                                                data=[r for r in rows if r[0] in {t.number for t in best}])}
            for name, values in imps.items():
                imp = wandb.Table(columns=["param", "importance"], data=[[k, v] for k, v in values.items()])
                media[f"importance/{name}"] = wandb.plot.bar(imp, "param", "importance",
                                                             title=f"parameter importance ({name})")
            run.log(media)
            run.summary.update({"best_trial": chosen.number, "best_val_acc": chosen.values[0],
                                **{f"best/{k}": v for k, v in chosen.params.items()}})
            return run.id
    except Exception as err:  # W&B trouble must not lose the sweep's results
        print(f"note: the W&B study summary was not logged ({str(err).splitlines()[0] if str(err) else err!r})")
        return None


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
