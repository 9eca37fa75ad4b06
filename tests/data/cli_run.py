"""Run ``ttfs-lab fit`` as a user would, in a subprocess without network, on a fabricated event dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

TESTS = Path(__file__).parents[1]


def fit_event_config(tmp_path: Path, class_path: str, data_dir: Path, **data) -> str:
    """A config file training a tiny network for a few batches on an event DataModule; returns its path."""
    config = {
        "seed_everything": 0,
        "model": {"spec": "c4-ap-fc10", "lr": 0.005},
        "data": {"class_path": class_path,
                 "init_args": {"data_dir": str(data_dir), "frames": 4, "batch_size": 8, "num_workers": 0, **data}},
        "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2,
                    "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu",
                    "devices": 1},
        "run": {"dir": str(tmp_path / "runs"), "wandb": "disabled"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def fit_offline(config: str) -> tuple[int, str, str]:
    """``ttfs-lab fit --config config`` with every download failing as it does offline: (status, stdout, stderr)."""
    code = ("import sys, urllib.request, urllib.error\n"
            "def offline(*a, **k): raise urllib.error.URLError('no network')\n"
            "urllib.request.urlopen = offline\n"
            "from ttfs_lab.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(TESTS)}
    proc = subprocess.run([sys.executable, "-c", code, "fit", "--config", config], env=env, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def error_line(status: int, stderr: str) -> str:
    """Exit status 2, no traceback, and one line of ours on stderr, ``error: ...``, the last one; returns it.

    The recordings are read inside ``fit`` (``prepare_data``), so Lightning's own start-up lines (GPU available,
    ...) may come first, as ``one_line_error(started=True)`` of tests/test_cli.py allows; none of them is an error.
    """
    assert status == 2 and "Traceback" not in stderr, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), stderr[-2000:]
    assert not [line for line in lines[:-1] if "error" in line.lower()], stderr[-2000:]
    return lines[-1]
