"""Two CPU processes through Lightning's DDP (launched as a subprocess, as a user would): one run record, and
spike statistics reduced over both processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
