"""Shared fixtures: no network, no W&B server, a tiny configuration on the embedded mnist5k digits."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
# Triton's interpreter runs the GPU kernels on CPU tensors, so that every machine tests them against the step loop
# (set before ttfs_lab.functional.triton_kernels is imported; the compiled kernels: test_triton_kernels.py)
os.environ.setdefault("TRITON_INTERPRET", "1")
# no test reads the machine's own system datasets (Debian's /usr/share/datasets); tests that need them fabricate
# them and point this variable at their folder (subprocesses inherit it)
os.environ["TTFS_LAB_SYSTEM_DATASETS"] = str(Path(__file__).parent / "no-system-datasets")
sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py for class_path references in configs


@pytest.fixture
def tiny_config(tmp_path):
    """A config dict that trains a tiny network for a few batches on mnist5k and records into ``tmp_path/runs``."""
    return {
        "seed_everything": 0,
        "model": {"spec": "c4-ap-fc16-fc10", "T": 4, "lr": 0.005},
        "data": {"class_path": "ttfs_lab.data.MNIST5k", "init_args": {"batch_size": 32}},
        "trainer": {"max_epochs": 2, "limit_train_batches": 3, "limit_val_batches": 2, "limit_test_batches": 2,
                    "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu",
                    "devices": 1},
        "run": {"dir": str(tmp_path / "runs"), "wandb": "disabled"},
    }
