"""ttfs-lab sweep: parallel workers on one journal, continuing a study, a killed worker, pruning, the Pareto front,
and one-line errors for bad search spaces. Fabricated DVS Gesture files, a tiny network, W&B disabled."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

TESTS = Path(__file__).parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "data"))
from fabricate_data import make_dvsgesture  # noqa: E402

from ttfs_lab.cli import main as cli_main  # noqa: E402
from ttfs_lab.sweep.space import SpaceError, load_space, parse_space  # noqa: E402
from ttfs_lab.sweep.storage import fail_dead_trials  # noqa: E402

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
SPACE = {
    "trials": 4,
    "objective": "acc",
    "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    "params": {
        "model.init": {"choices": ["ettfs", "kaiming"]},
        "model.lr": {"low": 1.0e-3, "high": 2.0e-2, "log": True},
        "model.norm": [True, False],
        "data.frames": {"choices": [4, 6]},  # = data.init_args.frames: two workers may build one cache at once
    },
}


@pytest.fixture(scope="module")
def dvs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvs")
    make_dvsgesture(root, n_per_split=100, events=200)
    return root


@pytest.fixture
def sweep(dvs_dir, tmp_path, monkeypatch):
    """Writes the base config and a space file into tmp_path; returns a function running ``ttfs-lab sweep``."""
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network access"))
    config = yaml.safe_load((ROOT / "configs" / "dvsgesture.yaml").read_text())
    config["model"]["spec"] = "c4-ap-fc11"
    config["data"]["init_args"].update(data_dir=str(dvs_dir), size=16, frames=4, batch_size=8, num_workers=0)
    # limits of 2, not 1: jsonargparse reads Lightning's Union[float, int] 1 as 1.0, i.e. 100% of the batches
    config["trainer"] = {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2,
                         "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                         "enable_model_summary": False}
    config["run"] = {"dir": str(tmp_path / "runs"), "wandb": "auto"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    def run(*extra, space=None, study="s"):
        path = tmp_path / "space.yaml"
        path.write_text(space if isinstance(space, str) else yaml.safe_dump(space or SPACE))
        return cli_main(["sweep", "--dataset", "dvsgesture", "--config", str(tmp_path / "config.yaml"),
                         "--space", str(path), "--storage", str(tmp_path / "studies" / f"{study}.journal"),
                         "--study", study, "--studies-dir", str(tmp_path / "studies"), "--wandb", "disabled",
                         *extra])

    return run


def load(tmp_path, study="s"):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "studies" / f"{study}.journal")))
    return optuna.load_study(study_name=study, storage=storage)


def meta(tmp_path, trial):
    return json.loads((tmp_path / "runs" / trial.user_attrs["run_id"] / "meta.json").read_text())


def test_two_workers_share_one_journal_and_the_same_command_continues_the_study(sweep, tmp_path, capsys):
    assert sweep("--workers", "2", "--trials", "4") == 0
    trials = load(tmp_path).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in DONE for t in trials), [(t.number, t.state, t.user_attrs.get("error")) for t in trials]
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # two worker processes shared the work
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete  # the first trials cannot be pruned (n_startup_trials=1)
    for t in complete:
        assert t.user_attrs["run_id"] == f"s-t{t.number:04d}" and 0.0 <= t.value <= 1.0
        assert (tmp_path / "runs" / t.user_attrs["run_id"] / "summary.json").exists()
        assert meta(tmp_path, t)["status"] == "finished" and meta(tmp_path, t)["group"] == "s"
        assert f"trial:{t.number}" in meta(tmp_path, t)["tags"]
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert meta(tmp_path, t)["status"] == "pruned"
    out = capsys.readouterr().out
    assert "best trials by val/acc_best" in out and "trial 3" in out
    logs = tmp_path / "studies" / "s-logs"
    assert sorted(p.name for p in logs.iterdir()) == ["worker0.log", "worker1.log"]  # the plan file is gone

    assert sweep("--workers", "2", "--trials", "2") == 0  # the same command again: two more trials, same study
    trials = load(tmp_path).trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in DONE for t in trials)
    assert len(list((tmp_path / "runs").iterdir())) == 6

    best = yaml.safe_load((tmp_path / "studies" / "s-best.yaml").read_text())
    study = load(tmp_path)
    assert best["model"]["init"] == study.best_trial.params["model.init"]
    assert best["data"]["init_args"]["frames"] == study.best_trial.params["data.frames"]
    assert "id" not in best["run"] and best["run"]["group"] == "s"
    from ttfs_lab.train import train

    summary = train(best)  # the best configuration is ready to run
    assert 0.0 <= summary["test/acc"] <= 1.0


def test_a_killed_worker_fails_its_trial_and_the_study_continues(sweep, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "sleeping.pid"
    sleeper = json.dumps([{"class_path": "sweep_helpers.SleepOnce", "init_args": {"marker": str(marker)}}])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    seen = {}

    def kill_the_sleeping_worker():
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (marker.exists() and marker.read_text().strip()):
                time.sleep(0.1)
            pid = int(marker.read_text())
            running = [t.number for t in load(tmp_path, "k").get_trials(states=(TrialState.RUNNING,))
                       if t.user_attrs.get("worker", {}).get("pid") == pid]
            seen.update(pid=pid, running=running)
        finally:
            if marker.exists() and marker.read_text().strip():
                os.kill(int(marker.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_sleeping_worker, daemon=True)
    killer.start()
    status = sweep("--workers", "2", "--trials", "3", "--set", f"trainer.callbacks={sleeper}", study="k")
    killer.join(timeout=10)
    assert status == 1 and "exited with signal SIGKILL" in capsys.readouterr().err
    (killed,) = seen["running"]  # the worker was killed while its trial was RUNNING
    trials = load(tmp_path, "k").trials
    assert trials[killed].state == TrialState.FAIL and "died" in trials[killed].user_attrs["error"]
    assert meta(tmp_path, trials[killed])["status"] == "failed"  # the run record says so too
    others = [t for t in trials if t.number != killed]
    assert others and all(t.state in DONE for t in others)  # the other worker finished its trials

    assert sweep("--trials", "2", "--set", f"trainer.callbacks={sleeper}", study="k") == 0
    after = load(tmp_path, "k").trials
    assert [t.number for t in after] == list(range(len(trials) + 2))  # numbering continues
    assert after[killed].state == TrialState.FAIL and all(t.state in DONE for t in after[len(trials):])


def test_a_trial_of_a_worker_that_died_earlier_is_failed_at_the_next_start(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "x.journal")))
    study = optuna.create_study(storage=storage, study_name="x", direction="maximize")
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    identities = [{"host": host, "pid": dead.pid, "start": None},  # died (killed with the whole command)
                  {"host": host, "pid": os.getpid(), "start": None},  # alive: another command's worker
                  {"host": host, "pid": os.getpid(), "start": -1},  # this pid, but another process (reused)
                  {"host": "elsewhere", "pid": 1, "start": None}]  # another machine: cannot be checked
    for identity in identities:
        study.ask().set_user_attr("worker", identity)
    failed, elsewhere = fail_dead_trials(study)
    assert [t.number for t in failed] == [0, 2] and [t.number for t in elsewhere] == [3]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL, TrialState.RUNNING]


def test_multi_objective_sweep_reports_the_pareto_front_and_logs_to_wandb(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    space = {**SPACE, "objective": "acc_latency", "params": {"model.decoder": ["twd", "first_spike"],
                                                            "model.lr": {"low": 1.0e-3, "high": 2.0e-2}}}
    assert sweep("--trials", "2", "--wandb", "offline", space=space, study="m") == 0
    study = load(tmp_path, "m")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)
    front = study.best_trials
    assert front and all(1.0 <= t.values[1] <= 4.0 for t in front)  # decision step within 1..T
    for t in front:  # the second value is the decision step of the epoch whose checkpoint is tested
        assert t.values == [t.user_attrs["val/acc_best"], t.user_attrs["val/decision_step"]]
    out = capsys.readouterr().out
    assert "Pareto front" in out and (tmp_path / "studies" / "m-best.yaml").exists()

    from helpers import wandb_run_record

    for t in study.trials:  # every trial is a W&B run in the study's group, its parameters in the config
        (run_file,) = (tmp_path / "runs" / t.user_attrs["run_id"]).glob("wandb/offline-run-*/run-*.wandb")
        run = wandb_run_record(run_file)
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert run.run_group == "m" and config["model.decoder"] == t.params["model.decoder"]
    (summary_file,) = (tmp_path / "studies").glob("wandb/offline-run-*/run-*.wandb")
    run = wandb_run_record(summary_file)
    assert run.run_group == "m" and run.job_type == "study-summary"
    (table,) = summary_file.parent.glob("files/media/table/trials_*.table.json")
    assert sorted(row[0] for row in json.loads(table.read_text())["data"]) == [0, 1]


def test_pruning_goes_through_lightning(sweep, tmp_path):
    space = {**SPACE, "pruner": {"type": "threshold", "lower": 1.01}, "params": {"model.lr": [0.005]}}
    assert sweep("--trials", "1", space=space, study="p") == 0
    (trial,) = load(tmp_path, "p").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    assert meta(tmp_path, trial)["status"] == "pruned"


@pytest.mark.parametrize("space,message", [
    ("params: {model.lr: [0.1, 0.2}\n", "not valid YAML at line 1"),
    ({"params": {"model.lr": {"low": 0.1, "high": 1.0, "type": "beta"}}}, "knob model.lr: unknown distribution type 'beta'"),
    ({"params": {"model.lr": {"low": 0.1, "high": 0.01}}}, "knob model.lr: low=0.1 is greater than high=0.01"),
    ({"params": {"model.init": {"choices": []}}}, "knob model.init: choices must be a non-empty list"),
    ({"params": {"model.tau": [1, 2]}}, "knob model.tau: model.tau is not a config path"),
    ({"params": {"data.init_args.fps": [1, 2]}}, "knob data.init_args.fps: data.init_args.fps is not a config path"),
    ({"params": {"model.decoder": ["twd", "rate"]}}, "knob model.decoder: value 'rate' is not valid"),
    ({"params": {"model.T": ["many"]}}, "knob model.T: value 'many' is not valid"),
    ({"pruner": "sometimes", "params": {"model.T": [4]}}, "unknown pruner type 'sometimes'"),
])
def test_a_bad_space_file_is_one_line_naming_the_file_and_the_knob(sweep, tmp_path, capsys, space, message):
    assert sweep(space=space) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and str(tmp_path / "space.yaml") in err
    assert message in err, err
    assert not (tmp_path / "studies").exists() and not (tmp_path / "runs").exists()  # nothing started


def test_override_errors_are_one_line(sweep, capsys):
    assert sweep("--set", "model.lr=0.1") == 2  # the space sweeps model.lr
    assert "conflicts with knob model.lr" in capsys.readouterr().err
    assert sweep("--set", "trainer.max_epoch=3") == 2
    assert "max_epoch" in capsys.readouterr().err
    assert sweep("--workers", "0") == 2
    assert "--workers 0" in capsys.readouterr().err


def test_run_folders_of_an_earlier_study_of_the_same_name_are_not_reused(sweep, tmp_path, capsys):
    (tmp_path / "runs" / "s-t0000").mkdir(parents=True)  # its journal was deleted, its runs were not
    assert sweep("--trials", "1") == 2
    err = capsys.readouterr().err
    assert "runs/s-t0000 belongs to an earlier study named s" in err and "\n" not in err.strip()


@pytest.mark.parametrize("dataset,space", [("mnist5k", "default"), ("cifar10", "default"), ("mnist5k", "mnist5k"),
                                           ("mnist5k", "latency"), ("dvsgesture", "dvsgesture")])
def test_shipped_space_files_fit_their_configs(dataset, space):
    from ttfs_lab.overrides import load_yaml
    from ttfs_lab.sweep.validate import check_config

    config = ROOT / "configs" / f"{dataset}.yaml"
    check_config(load_yaml(config), load_space(str(ROOT / "sweeps" / f"{space}.yaml")), str(config))


def test_defaults_and_shares():
    from ttfs_lab.sweep.study import default_space, default_study, shares

    assert default_space("dvsgesture").endswith("sweeps/dvsgesture.yaml")
    assert default_space("cifar100").endswith("sweeps/default.yaml")
    assert default_study("dvsgesture", "sweeps/dvsgesture.yaml") == "dvsgesture"
    assert default_study("mnist5k", "sweeps/latency.yaml") == "mnist5k-latency"
    assert shares(5, 2) == [3, 2] and shares(2, 4) == [1, 1] and shares(3, 1) == [3]


def test_space_file_forms():
    space = parse_space({"params": {"model.T": [4, 8], "model.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
                                    "trainer.accumulate_grad_batches": {"low": 1, "high": 4},
                                    "data.frames": {"choices": [8, 16]}}}, "s.yaml")
    kinds = {k.name: k.kind for k in space.knobs}
    assert kinds == {"model.T": "categorical", "model.lr": "float", "trainer.accumulate_grad_batches": "int",
                     "data.frames": "categorical"}
    assert space.knob("data.frames").target == "data.init_args.frames"
    assert space.trials == 20 and space.directions == ["maximize"]
    with pytest.raises(SpaceError, match="sets the same config path as knob data.frames"):
        parse_space({"params": {"data.frames": [4], "data.init_args.frames": [8]}}, "s.yaml")
    for shipped in sorted((ROOT / "sweeps").glob("*.yaml")):
        assert load_space(str(shipped)).knobs


@pytest.mark.parametrize("params,message", [
    ({"model.decoder": {"low": 1, "high": 2}}, "knob model.decoder: model.decoder is a str setting; give choices"),
    ({"model.T": {"low": 0, "high": 8}}, "knob model.T: value 0 is not valid (model.T=0 is not valid; use T >= 1)"),
    ({"model.T": ["many"]}, "knob model.T: value 'many' is not valid (model.T='many' is not valid; use an integer)"),
    ({"model.mode": ["step", "fast"]}, "knob model.mode: value 'fast' is not valid (model.mode='fast' is not valid"),
])
def test_network_knobs_are_checked_by_the_network_config_as_the_file_is_read(params, message):
    with pytest.raises(SpaceError) as err:
        parse_space({"params": params}, "s.yaml")
    assert str(err.value).startswith(f"s.yaml: {message}"), str(err.value)


def test_network_knobs_take_the_type_of_their_setting():
    space = parse_space({"params": {"model.twd_potential": {"low": 0, "high": 1},
                                    "model.T": {"low": 4.0, "high": 16.0},
                                    "trainer.accumulate_grad_batches": {"low": 1.0, "high": 4.0}}}, "s.yaml")
    kinds = {k.name: k.kind for k in space.knobs}
    assert kinds == {"model.twd_potential": "float", "model.T": "int", "trainer.accumulate_grad_batches": "float"}


def test_dashboard_serves_the_study_journal(tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    served = {}
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, host, port: served.update(
        storage=storage, host=host, port=port))
    args = ["sweep", "--dashboard", "--study", "d", "--studies-dir", str(tmp_path)]
    assert cli_main(args) == 2 and "no study journal" in capsys.readouterr().err
    optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "d.journal"))), study_name="d")
    assert cli_main([*args, "--port", "8123"]) == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    assert [s.study_name for s in optuna.get_all_study_summaries(served["storage"])] == ["d"]


def test_energy_objective_minimizes_the_energy_of_the_tested_epoch(sweep, tmp_path, capsys):
    """``acc_energy``: the second value is val/energy_nj (docs/method.md section 10) of the best-val/acc epoch."""
    space = {**SPACE, "objective": "acc_energy", "params": {"model.lr": [0.005]}}
    assert sweep("--trials", "1", space=space, study="e") == 0
    study = load(tmp_path, "e")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    (trial,) = study.trials
    assert trial.values == [trial.user_attrs["val/acc_best"], trial.user_attrs["val/energy_nj"]]
    lines = (tmp_path / "runs" / trial.user_attrs["run_id"] / "metrics.jsonl").read_text().splitlines()
    best = max((json.loads(line) for line in lines), key=lambda r: r["val/acc"])
    assert trial.values[1] == best["val/energy_nj"] > 0
    out = capsys.readouterr().out
    assert "Pareto front (max val/acc_best, min val/energy_nj)" in out and "| val/energy_nj " in out


def test_trials_leave_the_progress_bar_to_the_sweeps_own_lines_unless_the_config_asks_for_it():
    from dataclasses import replace as dc_replace

    from ttfs_lab.sweep.objective import Plan, trial_config
    from ttfs_lab.sweep.space import load_space

    space = load_space(str(TESTS.parent / "sweeps" / "dvsgesture.yaml"))
    plan = Plan(study="s", storage="s.journal", space=space, base={"trainer": {"max_epochs": 2}, "run": {}})
    params = {"data.init_args.frames": 8}
    config = trial_config(plan, params, 3)
    assert config["trainer"] == {"max_epochs": 2, "enable_progress_bar": False} and config["run"]["id"] == "s-t0003"
    asked = dc_replace(plan, base={"trainer": {"enable_progress_bar": True}})
    assert trial_config(asked, params, 3)["trainer"]["enable_progress_bar"] is True
