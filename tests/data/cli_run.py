"""Run ``ttfs-lab fit`` as a user would, in a subprocess without network, on a fabricated event dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

TESTS = Path(__file__).parents[1]
CONFIGS = TESTS.parent / "configs"


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


def fit_offline(config: str, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """``ttfs-lab fit --config config *args`` (in ``cwd``) with every download failing as it does offline:
    (status, stdout, stderr)."""
    code = ("import sys, urllib.request, urllib.error\n"
            "def offline(*a, **k): raise urllib.error.URLError('no network')\n"
            "urllib.request.urlopen = offline\n"
            "from ttfs_lab.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(TESTS)}
    proc = subprocess.run([sys.executable, "-c", code, "fit", "--config", config, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def error_line(status: int, stderr: str) -> str:
    """Exit status 2, no traceback, and stderr is one line of ours, ``error: ...``, and nothing else; returns it.

    The recordings are read by ``prepare_data``, which the CLI runs before the Trainer is built: none of
    Lightning's start-up lines (GPU available, ...) may come before the error.
    """
    assert status == 2 and "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    return lines[0]
