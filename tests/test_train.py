"""train(config): the run record, resume after a crash, NaN handling, and one-line config errors."""

import copy
import json
from pathlib import Path

import pytest
import torch

from ttfs_lab.errors import ConfigError, NonFiniteLossError
from ttfs_lab.train import train


def run_dirs(config):
    return sorted(p for p in Path(config["run"]["dir"]).iterdir() if p.is_dir())


def test_fit_writes_a_complete_run_record(tiny_config):
    summary = train(tiny_config)
    (run,) = run_dirs(tiny_config)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["dataset"] == "mnist5k" and meta["T"] == 4 and meta["stage"] == "fit"
    assert meta["components"] == {"init": "ettfs", "norm": True, "affine": True, "decoder": "twd", "pool": "avg"}
    epochs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(0 <= e["val/acc"] <= 1 and "val/decision_step" in e and "train/loss" in e for e in epochs)
    saved = json.loads((run / "summary.json").read_text())
    assert saved["test/acc"] == pytest.approx(summary["test/acc"])
    assert saved["throughput/samples_per_s"] > 0 and saved["val/acc_best"] >= epochs[-1]["val/acc"]
    assert len(saved["test/acc_vs_step"]) == 4 and saved["test/acc_vs_step"][-1] == pytest.approx(saved["test/acc"])
    assert set(saved["test/spikes_per_neuron"]) == {"layer1_c4", "layer2_ap", "layer3_fc16", "layer4_fc10"}
    assert all(v <= 1 for v in saved["test/spikes_per_neuron"].values())
    assert 0 <= saved["test/spikes_per_neuron_mean"] <= 1
    best = max(epochs, key=lambda e: e["val/acc"])  # what a sweep reads, returned without re-reading the record
    assert summary["best_epoch"] == saved["best_epoch"] == best and best["val/acc"] == summary["val/acc_best"]
    assert all(len(h) == 5 for h in saved["test/spike_time_hist"].values())
    assert (run / "checkpoints" / "best.ckpt").exists() and (run / "checkpoints" / "last.ckpt").exists()
    config_text = (run / "config.yaml").read_text()
    assert "spec: c4-ap-fc16-fc10" in config_text and "class_path: ttfs_lab.data.MNIST5k" in config_text


def test_rerunning_a_finished_run_does_not_train_again(tiny_config):
    tiny_config["run"]["id"] = "done"
    first = train(tiny_config)
    again = train(tiny_config)
    assert again["test/acc"] == first["test/acc"] and len(run_dirs(tiny_config)) == 1


def test_a_crashed_run_resumes_to_the_same_epochs_with_one_record(tiny_config):
    tiny_config["run"]["id"] = "crashy"
    crashing = copy.deepcopy(tiny_config)
    crashing["trainer"]["callbacks"] = [{"class_path": "helpers.CrashAtEpoch", "init_args": {"epoch": 1}}]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crashing)
    (run,) = run_dirs(tiny_config)
    assert json.loads((run / "meta.json").read_text())["status"] == "failed"
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [0]

    train(tiny_config)  # same run id, no crash: resumes
    assert run_dirs(tiny_config) == [run]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["resumed_from"].endswith(".ckpt")
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def test_nan_loss_stops_with_record_and_last_checkpoint_intact(tiny_config):
    tiny_config["run"]["id"] = "nan"
    tiny_config["trainer"]["callbacks"] = [{"class_path": "helpers.PoisonWeightsAtEpoch", "init_args": {"epoch": 1}}]
    with pytest.raises(NonFiniteLossError, match="model.lr") as err:
        train(tiny_config)
    assert "\n" not in str(err.value)
    (run,) = run_dirs(tiny_config)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed" and "became nan" in meta["error"]
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (run / "checkpoints" / "on_exception.ckpt").exists()


@pytest.mark.parametrize("change,message", [
    (lambda c: c["model"].update(nonsense=1), "nonsense"),
    (lambda c: c["data"].update(class_path="ttfs_lab.data.ImageNet"), "ImageNet"),
    (lambda c: c["model"].update(decoder="rate"), "decoder"),
    (lambda c: c["model"].update(spec="c4-xx-fc10"), "token 'xx'"),
    (lambda c: c["data"]["init_args"].update(batch_size=0), "batch_size=0 is not valid"),  # inside a Union error
    (lambda c: c["model"].update(ettfs_calibrate="maybe"), "model.ettfs_calibrate"),
    (lambda c: c["model"].update(calibrate_std=-1.0), "model.calibrate_std"),
])
def test_bad_config_gives_one_line_error(tiny_config, change, message):
    change(tiny_config)
    with pytest.raises(ConfigError, match=message) as err:
        train(tiny_config)
    assert "\n" not in str(err.value)


def shapes(summary, prefix):
    return {k: type(v) for k, v in summary.items() if k.startswith(prefix)}


def test_validate_and_test_a_saved_checkpoint_reproduce_the_fit_into_records_of_their_own(tiny_config):
    tiny_config["trainer"]["deterministic"] = True
    tiny_config["run"]["id"] = "fitted"
    summary = train(tiny_config)
    evaluation = {**tiny_config, "ckpt_path": summary["best_checkpoint"], "run": {**tiny_config["run"], "id": "tested"}}
    with pytest.raises(ConfigError, match="run.id=fitted holds the record of a `fit` run"):
        train({**evaluation, "run": tiny_config["run"]}, stage="test")  # a fit's record is never overwritten
    tested = train(evaluation, stage="test")
    assert shapes(tested, "test/") == shapes(summary, "test/")  # one shape whatever wrote it
    assert tested["test/spikes_per_neuron"].keys() == summary["test/spikes_per_neuron"].keys()
    assert tested["test/spikes_per_neuron_mean"] == pytest.approx(summary["test/spikes_per_neuron_mean"])
    record = Path(tiny_config["run"]["dir"]) / "tested"
    meta = json.loads((record / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["stage"] == "test" and meta["checkpoint"] == summary["best_checkpoint"]
    assert json.loads((record / "summary.json").read_text()) == json.loads(json.dumps(tested))
    assert json.loads((Path(tiny_config["run"]["dir"]) / "fitted" / "summary.json").read_text())["epochs"] == 2
    assert tested["test/acc"] == pytest.approx(summary["test/acc"])
    assert tested["test/decision_step"] == pytest.approx(summary["test/decision_step"])
    for key in ("test/synops_ac", "test/synops_ac_exit", "test/energy_nj", "test/energy_ratio_ann"):  # section 10
        assert tested[key] == pytest.approx(summary[key]), key
    assert tested["test/ops_per_layer"].keys() == summary["test/ops_per_layer"].keys() and "test/ops" not in tested
    validated = train({**evaluation, "run": {**evaluation["run"], "id": "validated"}}, stage="validate")
    assert validated["val/acc"] == pytest.approx(summary["val/acc_best"])
    assert shapes(validated, "val/") == {k: t for k, t in shapes(summary, "val/").items() if k != "val/acc_best"}
    with pytest.raises(ConfigError, match="--ckpt_path"):
        train(tiny_config, stage="test")


def test_a_bug_in_prepare_data_keeps_its_traceback_and_is_not_a_config_error(tiny_config, monkeypatch):
    """The CLI prepares the data inside make_cli, which turns ValueErrors of the model into ConfigErrors: one of
    prepare_data (a bug, not a setting) must stay itself, and nothing may be built after it."""
    from ttfs_lab.data import MNIST5k

    def broken(self):
        raise ValueError("a bug in prepare_data")

    monkeypatch.setattr(MNIST5k, "prepare_data", broken)
    with pytest.raises(ValueError, match="a bug in prepare_data") as info:
        train(tiny_config)
    assert not isinstance(info.value, ConfigError)
    assert not Path(tiny_config["run"]["dir"]).exists()
