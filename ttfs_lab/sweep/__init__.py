"""Optuna sweeps over any config value: ``ttfs-lab sweep`` / ``make sweep DATASET=<name>``.

- ``space.py``     search-space files (``sweeps/*.yaml``): knobs = config paths, objective, pruner, sampler
- ``validate.py``  every knob checked against the config schema before any trial starts
- ``storage.py``   journal file / RDB URL storages, dead-worker detection (trials of killed workers -> FAIL)
- ``objective.py`` one trial = one ``train(config)`` run with Optuna's Lightning pruning callback; workers
- ``study.py``     the command: create or continue the study, run WORKERS worker processes, Ctrl-C handling
- ``report.py``    best trials / Pareto front, parameter importances, best config YAML, W&B study summary
- ``cli.py``       argument parsing, ``--dashboard`` (optuna-dashboard on 127.0.0.1)
"""

from ttfs_lab.sweep.cli import main
from ttfs_lab.sweep.space import Knob, Space, SpaceError, load_space

__all__ = ["Knob", "Space", "SpaceError", "load_space", "main"]
