"""``ttfs-lab sweep``: argument parsing, the sweep, the dashboard, and the worker entry point."""

from __future__ import annotations

import argparse
from typing import Optional

from ttfs_lab.errors import ConfigError
from ttfs_lab.sweep.storage import GRACE_FACTOR, HEARTBEAT_S

EXAMPLES = """examples:
  ttfs-lab sweep --dataset dvsgesture --trials 40 --workers 2
  ttfs-lab sweep --dataset mnist5k --space sweeps/default.yaml --epochs 3 --set data.init_args.batch_size=128
  ttfs-lab sweep --dataset cifar10 --storage postgresql://user:pw@host/optuna --study cifar-a   (on every machine)
  ttfs-lab sweep --dashboard --storage postgresql://user:pw@host/optuna --study cifar-a
  ttfs-lab sweep --dashboard --dataset dvsgesture          (optuna-dashboard on http://127.0.0.1:8080)

Running the same command again continues the study (same --study and --storage)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through the CLI's error path instead of usage + exit
        raise ConfigError(f"ttfs-lab sweep: {message} (see ttfs-lab sweep --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ttfs-lab sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Optuna search over config values: each trial is one `ttfs-lab fit` run (pruned "
                            "through Lightning), the study lives in a storage that the same command continues.",
                epilog=EXAMPLES)
    p.add_argument("--dataset", default="mnist5k", help="dataset name; picks configs/<dataset>.yaml and the space")
    p.add_argument("--config", default=None, help="base config (default configs/<dataset>.yaml)")
    p.add_argument("--space", default=None,
                   help="search-space file (default sweeps/<dataset>.yaml if it exists, else sweeps/default.yaml)")
    p.add_argument("--trials", type=int, default=None, help="trials this command adds, over all workers "
                                                              "(default: the space file's, else 20)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes in parallel (default 1)")
    p.add_argument("--storage", default=None, help="journal file path or Optuna storage URL (sqlite:///x.db, "
                                                   "postgresql://...); default <studies-dir>/<study>.journal")
    p.add_argument("--study", default=None, help="study name (default <dataset>-<space file name>, or <dataset> "
                                                 "for sweeps/<dataset>.yaml)")
    p.add_argument("--runs-dir", default=None, help="run records folder (default: the config's run.dir, else runs)")
    p.add_argument("--studies-dir", default="sweeps/studies",
                   help="default journal, best-config YAML, worker logs and W&B summary (default sweeps/studies)")
    p.add_argument("--wandb", default=None, choices=("auto", "online", "offline", "disabled"),
                   help="W&B mode of every trial and of the summary (default: the config's run.wandb)")
    p.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs of every trial "
                                                            "(default: the space file's epochs, else the config's)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="config override for every trial, e.g. --set trainer.limit_train_batches=5 (repeatable)")
    p.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, metavar="SECONDS",
                   help=f"RDB storages (PostgreSQL, ...): seconds between a running trial's heartbeats; a trial "
                        f"without one for {GRACE_FACTOR}x that (its worker died, on any machine) is marked FAIL by "
                        f"the next worker that starts a trial (default {HEARTBEAT_S})")
    p.add_argument("--dashboard", action="store_true", help="serve optuna-dashboard for the study's storage")
    p.add_argument("--host", default="127.0.0.1", help="dashboard host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="dashboard port (default 8080)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # plan file of a worker process
    p.add_argument("--worker-trials", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """``ttfs-lab sweep ...``; user errors are raised as one-line ``ConfigError`` (the CLI prints them)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    if args.worker:
        from ttfs_lab.sweep.objective import worker_main
        from ttfs_lab.sweep.storage import set_heartbeat

        set_heartbeat(args.heartbeat)
        return worker_main(args.worker, args.worker_trials, args.worker_index)
    if args.dashboard:
        return dashboard(args)
    from ttfs_lab.overrides import parse_assignments
    from ttfs_lab.sweep.study import Options, run_sweep

    opts = Options(dataset=args.dataset, config=args.config, space=args.space, trials=args.trials,
                   workers=args.workers, storage=args.storage, study=args.study, runs_dir=args.runs_dir,
                   studies_dir=args.studies_dir, wandb=args.wandb, epochs=args.epochs,
                   overrides=parse_assignments(args.set), heartbeat=args.heartbeat)
    return run_sweep(opts)


def dashboard(args) -> int:
    """optuna-dashboard on the study's storage (the journal path is resolved from the study name)."""
    from pathlib import Path

    from ttfs_lab.sweep.storage import check_study_name, is_url, open_storage, resolve_storage, shown

    if args.study:
        study = check_study_name(args.study)
    else:  # study.py loads Lightning: only when the name must be derived
        from ttfs_lab.sweep.study import default_space, default_study

        study = check_study_name(default_study(args.dataset, args.space or default_space(args.dataset)))
    spec = resolve_storage(args.storage, args.studies_dir, study)
    if not is_url(spec) and not Path(spec).exists():
        raise ConfigError(f"no study journal at {spec}: run `ttfs-lab sweep --dataset {args.dataset}` first, "
                          "or pass --study / --storage")
    import optuna_dashboard

    storage = open_storage(spec)  # an unreachable database: one line, before the banner
    which = f" (study {study})" if args.storage is None or args.study else ""
    print(f"optuna-dashboard for {shown(spec)}{which} on http://{args.host}:{args.port}/  (Ctrl-C stops it)",
          flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
