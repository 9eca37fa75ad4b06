"""The sweep command's parent: check everything, create or continue the study, run the workers, report.

Order: read the space file and the base config, apply the overrides, check every knob against the config schema
(nothing starts when one is wrong), open the storage and create the study once (``load_if_exists``: the same
command continues it), fail the trials of workers that died earlier, then run WORKERS workers on their shares
of TRIALS (one worker runs in this process; more are ``python -m ttfs_lab.sweep --worker`` processes, their
output in ``<studies-dir>/<study>-logs/``), fail the trials of workers that died now, and report.
Ctrl-C stops the workers (their trials are marked FAIL) and says how to continue. ``--heartbeat`` sets the
heartbeat of RDB storages in this process and in its worker processes (storage.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ttfs_lab.errors import ConfigError
from ttfs_lab.overrides import apply, load_yaml
from ttfs_lab.sweep.objective import Plan, run_id, run_worker
from ttfs_lab.sweep.progress import Progress
from ttfs_lab.sweep.space import SpaceError, Space, load_space, target_path
from ttfs_lab.sweep.storage import (HEARTBEAT_S, check_study_name, fail_dead_trials, heartbeat, is_url, open_storage,
                                    resolve_storage, set_heartbeat, shown)

STOP_GRACE_S = 30


@dataclass
class Options:
    dataset: str = "mnist5k"
    config: Optional[str] = None
    space: Optional[str] = None
    trials: Optional[int] = None
    workers: int = 1
    storage: Optional[str] = None
    study: Optional[str] = None
    runs_dir: Optional[str] = None
    studies_dir: str = "sweeps/studies"
    wandb: Optional[str] = None
    epochs: Optional[int] = None
    overrides: dict = field(default_factory=dict)
    heartbeat: int = HEARTBEAT_S  # RDB storages: seconds between heartbeats (grace period: 3x)


def _existing(path: str) -> str:
    """``path`` relative to the working directory, else relative to the repository (for installed use)."""
    if Path(path).exists() or Path(path).is_absolute():
        return path
    repo = Path(__file__).resolve().parents[2] / path
    return str(repo) if repo.exists() else path


def default_space(dataset: str) -> str:
    own = _existing(f"sweeps/{dataset}.yaml")
    return own if Path(own).exists() else _existing("sweeps/default.yaml")


def default_study(dataset: str, space_path: str) -> str:
    stem = Path(space_path).stem
    return dataset if stem == dataset else f"{dataset}-{stem}"


def make_plan(opts: Options) -> tuple[Plan, Space, str]:
    """Everything checked and resolved; returns (plan, space, base config path). Raises one-line errors."""
    from ttfs_lab.sweep.validate import check_config

    space_path = opts.space or default_space(opts.dataset)
    space = load_space(space_path)
    config_path = opts.config or _existing(f"configs/{opts.dataset}.yaml")
    if not Path(config_path).exists():
        raise ConfigError(f"{config_path}: no such config; pass the base config with --config")
    study = check_study_name(opts.study or default_study(opts.dataset, space_path))
    base = load_yaml(config_path)
    targets = {k.target: k.name for k in space.knobs}
    overrides = {}
    for path, value in opts.overrides.items():
        if target_path(path) in targets:
            raise SpaceError(f"--set {path} conflicts with knob {targets[target_path(path)]} of {space.path}; "
                             "drop one of them")
        overrides[target_path(path)] = value
    epochs = opts.epochs or space.epochs
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs} is not valid; use a positive integer")
    run = base.get("run") or {}
    fixed = {**overrides, "run.dir": opts.runs_dir or run.get("dir") or "runs",
             "run.wandb": opts.wandb or run.get("wandb") or "auto"}
    if epochs:
        fixed["trainer.max_epochs"] = epochs
    base = apply(base, fixed)
    for key in ("id", "resume"):
        base["run"].pop(key, None)
    check_config(base, space, config_path)
    storage = resolve_storage(opts.storage, opts.studies_dir, study)
    prune = space.pruner.get("type") != "none"
    return Plan(study=study, storage=storage, space=space, base=base, prune=prune), space, config_path


def create_study(plan: Plan, config_path: str):
    """Create the study, or load it; a study of another objective or with changed knobs is an error."""
    import optuna
    from optuna.distributions import check_distribution_compatibility

    storage = open_storage(plan.storage)
    study = optuna.create_study(storage=storage, study_name=plan.study, directions=plan.space.directions,
                                load_if_exists=True)
    wanted = [d.upper() for d in plan.space.directions]
    if [d.name for d in study.directions] != wanted:
        raise ConfigError(f"study {plan.study} in {shown(plan.storage)} optimizes "
                          f"{', '.join(d.name.lower() for d in study.directions)}, not objective "
                          f"{plan.space.objective} ({', '.join(plan.space.directions)}); choose another --study")
    seen = {}
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            seen.setdefault(name, dist)
    for knob in plan.space.knobs:
        if knob.name in seen:
            try:
                check_distribution_compatibility(seen[knob.name], knob.distribution())
            except ValueError as err:
                raise SpaceError(f"{plan.space.path}: knob {knob.name}: changed since study {plan.study} began "
                                 f"({err}); keep its distribution, or start a new study with --study") from None
    if not study.user_attrs:
        for key, value in {"space": plan.space.path, "config": config_path, "objective": plan.space.objective,
                           "created_by": "ttfs-lab sweep"}.items():
            study.set_user_attr(key, value)
    return study


def check_run_folders(study, runs_dir: str, storage: str) -> None:
    """Run folders ``<study>-t<n>`` for trials the study does not hold come from an earlier study of this name
    (its storage was deleted): their ids would collide with the new trials'."""
    folders = sorted(Path(runs_dir).glob(f"{study.study_name}-t[0-9][0-9][0-9][0-9]*"))  # list first, then trials
    known = {run_id(study.study_name, t.number) for t in study.get_trials(deepcopy=False)}
    stale = [p for p in folders if p.is_dir() and p.name not in known]
    if stale:
        raise ConfigError(f"{stale[0]} belongs to an earlier study named {study.study_name} (not in "
                          f"{shown(storage)}); remove {runs_dir}/{study.study_name}-t* "
                          "or choose another --study")


def shares(trials: int, workers: int) -> list[int]:
    workers = max(1, min(workers, trials))
    return [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]


def run_sweep(opts: Options) -> int:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if opts.workers < 1:
        raise ConfigError(f"--workers {opts.workers} is not valid; use 1 or more")
    if opts.trials is not None and opts.trials < 1:
        raise ConfigError(f"--trials {opts.trials} is not valid; use 1 or more")
    set_heartbeat(opts.heartbeat)
    plan, space, config_path = make_plan(opts)
    studies_dir = Path(opts.studies_dir)
    study = create_study(plan, config_path)
    report_failed(plan.study, fail_dead_trials(study), "earlier")
    check_run_folders(study, plan.base["run"]["dir"], plan.storage)
    trials = opts.trials or space.trials
    split = shares(trials, opts.workers)
    before = len(study.trials)
    print(f"[sweep {plan.study}] {trials} trial(s) on {len(split)} worker(s); storage {shown(plan.storage)}; "
          f"{before} trial(s) already in the study; objective {space.objective}"
          + (f"; pruner {space.pruner['type']}" if plan.prune and not space.multi_objective else "")
          + ("; heartbeat every {}s, grace {}s".format(*heartbeat()) if _has_heartbeat(plan.storage) else ""),
          flush=True)
    print(f"[sweep {plan.study}] knobs ({space.path}): "
          + "; ".join(f"{k.name} {k.describe()}" for k in space.knobs), flush=True)
    if space.multi_objective and plan.prune:
        print(f"[sweep {plan.study}] note: no pruning for {space.objective} (Optuna cannot prune multi-objective "
              "trials)")
    interrupted, broken = False, []
    with _sigterm_as_interrupt():
        if len(split) == 1:
            try:
                run_worker(plan, split[0], 0)
            except KeyboardInterrupt:
                interrupted = True
        else:
            interrupted, broken = run_processes(plan, split, studies_dir)
    failed_now = fail_dead_trials(study)
    report_failed(plan.study, failed_now, "now")
    from ttfs_lab.sweep.report import summarize

    project = (plan.base.get("run") or {}).get("project", "ttfs-lab")
    summarize(study, plan, studies_dir, plan.base["run"]["wandb"], project)
    if interrupted:
        print(f"\ninterrupted: the study keeps its finished trials; the trials that were running are marked FAIL.\n"
              f"continue with the same command (study {plan.study}, storage {shown(plan.storage)})", file=sys.stderr)
        return 130
    mine = [t for t in study.get_trials(deepcopy=False) if t.number >= before]
    for index, code, log in broken:
        last = _last_line(log)
        print(f"warning: worker {index} exited with {_exit_reason(code)}; its running trial is marked FAIL "
              f"(log: {log}{'; last line: ' + last if last else ''}). Run the same command again to add the "
              "missing trials.", file=sys.stderr)
    if not any(t.state.name in ("COMPLETE", "PRUNED") for t in mine):
        errors = [t.user_attrs.get("error") for t in mine if t.user_attrs.get("error")]
        print(f"warning: no trial of this command completed" + (f"; first error: {errors[0]}" if errors else ""),
              file=sys.stderr)
        return 1
    return 1 if broken else 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (e.g. from a job scheduler) stops the sweep like Ctrl-C: workers stopped, their trials failed."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_failed(study: str, result: tuple, when: str) -> None:
    failed, elsewhere = result
    for t in failed:
        print(f"[sweep {study}] trial {t.number} marked FAIL: {t.user_attrs.get('error', 'its worker died')}",
              flush=True)
    if when == "earlier" and elsewhere:
        hosts = sorted({str(t.user_attrs.get("worker", {}).get("host")) for t in elsewhere})
        print(f"[sweep {study}] note: {len(elsewhere)} trial(s) RUNNING on other hosts ({', '.join(hosts)}); "
              "left alone", flush=True)


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [l.strip() for l in f.read().decode(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def worker_env(index: int, workers: int) -> dict:
    """Each worker gets its share of the CPU threads (unless set), and its own GPU when there are several."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(key, threads)
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        try:
            import torch

            count = torch.cuda.device_count()
        except Exception:
            count = 0
        if count > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(index % count)
    return env


def run_processes(plan: Plan, split: list[int], studies_dir: Path) -> tuple[bool, list]:
    """Run one worker process per share; print each trial as it finishes. Returns (interrupted, broken workers)."""
    import optuna

    logs = studies_dir / f"{plan.study}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan_file = (logs / f"plan-{os.getpid()}.json").resolve()  # read by the workers as they start; removed at the end
    study = optuna.load_study(study_name=plan.study, storage=open_storage(plan.storage))
    first = max((t.number for t in study.get_trials(deepcopy=False)), default=-1) + 1  # this command's trials
    progress = Progress(plan.study, sum(split), plan.space.second_value)
    procs, files = [], []
    interrupted = False
    try:
        plan_file.write_text(plan.to_json())
        for index, n in enumerate(split):
            log_path = logs / f"worker{index}.log"
            log = open(log_path, "ab")
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} sweep {plan.study}: {n} trial(s)\n".encode())
            log.flush()
            files.append((log, log_path))
            cmd = worker_command(plan_file, n, index)
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=worker_env(index, len(split))))
        print(f"[sweep {plan.study}] workers {', '.join(str(p.pid) for p in procs)}; logs in {logs}/", flush=True)
        try:
            while any(p.poll() is None for p in procs):
                time.sleep(0.5)
                _print_progress(progress, study, first)
        except KeyboardInterrupt:
            interrupted = True
            print(f"\n[sweep {plan.study}] stopping the workers (Ctrl-C again to kill them now)", file=sys.stderr)
            stop_processes(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log, _ in files:
            log.close()
        plan_file.unlink(missing_ok=True)
    _print_progress(progress, study, first)
    broken = [(i, p.returncode, files[i][1]) for i, p in enumerate(procs)
              if p.returncode not in (0, 130) and not interrupted]
    return interrupted, broken


def worker_command(plan_file: Path, trials: int, index: int) -> list[str]:
    """The command line of worker process ``index`` (it inherits this process's heartbeat setting)."""
    return [sys.executable, "-m", "ttfs_lab.sweep", "--worker", str(plan_file), "--worker-trials", str(trials),
            "--worker-index", str(index), "--heartbeat", str(heartbeat()[0])]


def _has_heartbeat(storage: str) -> bool:
    return is_url(storage) and not storage.startswith("redis://")


def stop_processes(procs: list) -> None:
    """SIGTERM (the workers fail their running trial and exit), then SIGKILL after a grace period."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _print_progress(progress: Progress, study, first: int) -> None:
    """Each worker's trials as they start, finish an epoch and end (ttfs_lab/sweep/progress.py)."""
    for line in progress.poll(study, first):
        print(line, flush=True)
