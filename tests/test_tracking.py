"""W&B logging read back from an offline run, the W&B mode rule, and the callback that records a stopped run
(the run record itself: tests/record/)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import read_wandb_history
from ttfs_lab.record import RunRecord
from ttfs_lab.tracking import RunRecorder, resolve_wandb_mode
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


@pytest.mark.parametrize("exception, status", [
    (KeyboardInterrupt(), "interrupted"),
    (RuntimeError("Error downloading x.gz:\n  details\n  no network"), "failed"),
    (type("TrialPruned", (Exception,), {})("pruned at epoch 1"), "pruned"),
])
def test_run_recorder_records_how_a_run_stopped(tmp_path, exception, status):
    record = RunRecord(tmp_path / "r")
    record.start(run_id="r")
    RunRecorder(record).on_exception(SimpleNamespace(), None, exception)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == status and meta["ended"] and "\n" not in (meta["error"] or "")
    if status == "failed":
        assert meta["error"] == "Error downloading x.gz: no network"


def test_the_epoch_timer_stops_while_the_epoch_validates(tmp_path):
    """Lightning validates inside the training epoch; a slow validation must not count as training time."""
    import time

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ttfs_lab.tracking import EpochTimer

    class Slow(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def validation_step(self, batch, batch_idx):
            time.sleep(0.25)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.rand(16, 4), torch.zeros(16)), batch_size=4)
    module = Slow()
    trainer = L.Trainer(max_epochs=1, limit_val_batches=4, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[EpochTimer()],
                        default_root_dir=tmp_path, num_sanity_val_steps=1)
    start = time.perf_counter()
    trainer.fit(module, data, data)
    total = time.perf_counter() - start
    seconds = float(trainer.callback_metrics["time/epoch_s"])
    assert total > 1.0 and 0 < seconds < 0.5  # 4 validation batches of 0.25 s (and the sanity check) left out
    assert float(trainer.callback_metrics["throughput/samples_per_s"]) == pytest.approx(16 / seconds, rel=1e-3)
