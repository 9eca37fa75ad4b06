"""W&B logging read back from an offline run, the W&B mode rule, and run-record bookkeeping."""

import json
from pathlib import Path

import pytest

from helpers import read_wandb_history
from ttfs_lab.tracking import RunRecord, resolve_wandb_mode
from ttfs_lab.train import train


def test_offline_wandb_run_holds_the_logged_metrics(tiny_config, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    tiny_config["run"].update(wandb="auto", id="wb", group="g1")
    summary = train(tiny_config)
    (run_file,) = Path(tiny_config["run"]["dir"]).glob("wb/wandb/offline-run-*/run-wb.wandb")
    rows = read_wandb_history(run_file)
    keys = set().union(*rows)
    assert {"train/loss", "val/acc", "val/acc_best", "val/decision_step", "test/acc", "test/decision_step",
            "val/spikes/layer1_c4", "throughput/samples_per_s"} <= keys
    assert any(k.startswith("test/spike_time/layer4_fc10") for k in keys)
    assert any(k.startswith("test/acc_vs_step") for k in keys)
    # operations and energy per inference (docs/method.md section 10): totals, per layer, the per-layer chart
    assert {"test/energy_nj", "test/energy_ratio_ann", "val/energy_nj", "test/mac/layer1_c4_syn",
            "test/ac/layer3_fc16_syn", "test/ac_exit/layer4_fc10_syn"} <= keys
    assert any(k.startswith("test/ops_per_layer") for k in keys)
    (energy,) = [r["test/energy_nj"] for r in rows if "test/energy_nj" in r]
    assert energy == pytest.approx(summary["test/energy_nj"])
    (test_acc,) = [r["test/acc"] for r in rows if "test/acc" in r]
    assert test_acc == pytest.approx(summary["test/acc"])
    assert len([r for r in rows if "val/acc" in r]) == 2


def test_wandb_mode_rule(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_wandb_mode("auto") == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("online") == "disabled"
    with pytest.raises(ValueError, match="run.wandb='cloud'"):
        resolve_wandb_mode("cloud")


def test_run_record_survives_a_cut_line_and_replaces_a_rerun_epoch(tmp_path):
    record = RunRecord(tmp_path / "r")
    record.append_epoch({"epoch": 0, "val/acc": 0.5})
    record.append_epoch({"epoch": 1, "val/acc": 0.6})
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "val/a')  # a crash in the middle of a write
    assert [r["epoch"] for r in record.epochs()] == [0, 1]
    record.truncate_epochs(1)
    record.append_epoch({"epoch": 1, "val/acc": 0.7})
    assert record.epochs() == [{"epoch": 0, "val/acc": 0.5}, {"epoch": 1, "val/acc": 0.7}]
    record.update_meta(status="running")
    record.update_meta(error=None)
    assert json.loads((tmp_path / "r" / "meta.json").read_text()) == {"status": "running", "error": None}
