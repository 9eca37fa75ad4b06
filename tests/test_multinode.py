"""Lightning DDP across two "nodes" (two launches of ``ttfs-lab fit`` with ``--trainer.num_nodes 2``, NODE_RANK 0
and 1, the variables of Lightning's manual cluster setup, gloo on CPU): one run record, written by rank 0, and
the same figures as one process making the same optimizer steps (tests/multinode_helpers.py)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).parent
ROOT = TESTS.parent
STEPS, VAL, TEST, BATCH = 6, 2, 2, 16  # per rank: optimizer steps, validation and test batches; batch size
TIMING = ("throughput/samples_per_s", "fit_s", "wall_s", "time/epoch_s", "best_checkpoint")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flat(value, prefix=""):
    """Every number (and string) of a summary or metrics row under a dotted key; lists by index."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def assert_same_figures(two_nodes: dict, one_process: dict) -> None:
    """Equal, except wall times and paths; losses (float means, summed in another order) to float precision."""
    a, b = flat(two_nodes), flat(one_process)
    assert a.keys() == b.keys()
    for key in a:
        if key.split(".")[0] in TIMING or key.endswith(TIMING):
            continue
        if key.endswith("loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
        else:
            assert a[key] == b[key], key


@pytest.mark.slow
def test_two_nodes_write_one_record_with_the_figures_of_one_process(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "mnist5k.yaml").read_text())
    config["model"]["spec"] = "c4-ap-fc16-fc10"
    config["data"]["init_args"]["batch_size"] = BATCH
    config["trainer"].update(max_epochs=1, limit_train_batches=STEPS, limit_val_batches=VAL,
                             limit_test_batches=TEST, enable_progress_bar=False, enable_model_summary=False)
    config["run"] = {"dir": str(tmp_path / "runs"), "wandb": "disabled"}  # both nodes see it (shared disk)
    (tmp_path / "two_nodes.yaml").write_text(yaml.safe_dump(config))
    # the reference: one process, each step = rank 0's batch then rank 1's, gradients accumulated over both
    config["data"] = {"class_path": "multinode_helpers.RankInterleavedMNIST5k",
                      "init_args": {**config["data"]["init_args"], "world": 2}}
    config["trainer"].update(accelerator="cpu", accumulate_grad_batches=2, limit_train_batches=2 * STEPS,
                             limit_val_batches=2 * VAL, limit_test_batches=2 * TEST)
    config["run"] = {"dir": str(tmp_path / "reference"), "wandb": "disabled"}
    (tmp_path / "one_process.yaml").write_text(yaml.safe_dump(config))

    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "GLOO_SOCKET_IFNAME": "lo"}
    cluster = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    fit = [sys.executable, "-m", "ttfs_lab.cli", "fit", "--config"]
    procs = {}
    for rank in (0, 1):  # as on two machines: the same command, NODE_RANK 0 and 1
        (tmp_path / f"node{rank}").mkdir()
        procs[f"node{rank}"] = subprocess.Popen(
            [*fit, str(tmp_path / "two_nodes.yaml"), "--trainer.num_nodes", "2", "--trainer.devices", "1",
             "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"], cwd=tmp_path / f"node{rank}",
            env={**env, **cluster, "NODE_RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs["reference"] = subprocess.Popen(
        [*fit, str(tmp_path / "one_process.yaml")], cwd=tmp_path,
        env={**env, "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = {name: proc.communicate(timeout=400)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{out[name][-3000:]}"
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out["node1"]  # one world of two processes, one on each node

    (run,) = (tmp_path / "runs").iterdir()  # one record: rank 0's
    (reference,) = (tmp_path / "reference").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "finished"
    assert out["node0"].count("test accuracy") == 1 and "test accuracy" not in out["node1"]
    summary = json.loads((run / "summary.json").read_text())
    # 2 ranks x 2 test batches x 16 samples, 10 output neurons each: the all-reduced total
    assert sum(summary["test/spike_time_hist"]["layer4_fc10"]) == 2 * TEST * BATCH * 10
    assert_same_figures(summary, json.loads((reference / "summary.json").read_text()))
    (epoch,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (epoch_ref,) = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert epoch["step"] == STEPS
    assert_same_figures(epoch, epoch_ref)
