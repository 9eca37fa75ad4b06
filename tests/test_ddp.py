"""Two CPU processes through Lightning's DDP (launched as a subprocess, as a user would): one run record, and
spike statistics reduced over both processes; which processes prepare the data before the Trainer is built."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def test_ddp_two_processes_write_one_record_with_reduced_statistics(tiny_config, tmp_path):
    tiny_config["trainer"].update(strategy="ddp", devices=2, max_epochs=1, limit_test_batches=2)
    tiny_config["data"]["init_args"]["batch_size"] = 16
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "ttfs_lab.cli", "fit", "--config", str(config)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in Path(tiny_config["run"]["dir"]).iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads((run / "meta.json").read_text())["status"] == "finished"
    # 2 processes x 2 test batches x 16 samples, 10 output neurons each: only an all-reduce gives this total
    assert sum(summary["test/spike_time_hist"]["layer4_fc10"]) == 2 * 2 * 16 * 10
    assert proc.stdout.count("test accuracy") == 1


@pytest.mark.parametrize("env, alone", [
    ({}, True),                                                   # ttfs-lab fit (also with strategy ddp: rank 0)
    ({"LOCAL_RANK": "0", "WORLD_SIZE": "1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, True),  # one sbatch task
    ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, False),  # a child Lightning's DDP launched
    ({"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}, False),  # torchrun's rank 0
    ({"NODE_RANK": "0", "WORLD_SIZE": "2"}, False),              # node 0 of a manual multi-node launch
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, False),  # srun's first of two tasks
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}, False),  # mpirun
])
def test_the_data_is_prepared_before_the_trainer_only_in_a_process_launched_alone(env, alone, monkeypatch):
    """Early prepare_data (ttfs_lab.config) only where Lightning calls it and no other process of the run exists
    yet to wait for it; in a torchrun / SLURM / multi-node process Lightning prepares, behind its barrier."""
    from ttfs_lab.config import RANK_VARIABLES, SIZE_VARIABLES, launched_alone

    for name in (*SIZE_VARIABLES, *RANK_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launched_alone() is alone
