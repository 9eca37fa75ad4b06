"""A sweep shows each trial's progress (trial k of N, its parameters, its best value so far, the study's best),
builds each frame cache once for all its trials and workers, and runs on every event dataset's shipped space."""

import re
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "data"))
from fabricate_data import make_cifar10dvs, make_dvsgesture  # noqa: E402

from ttfs_lab.cli import main as cli_main  # noqa: E402
from ttfs_lab.sweep.space import load_space  # noqa: E402

SPACE = {"trials": 3, "objective": "acc", "pruner": {"type": "none"},
         "params": {"model.lr": {"low": 1.0e-3, "high": 2.0e-2, "log": True}, "data.frames": {"choices": [4, 6]}}}
STARTED = re.compile(r"^\[sweep s\] trial (\d+) \((\d+) of (\d+)\) started \| (.*) \| run (\S+)$")
EPOCH = re.compile(r"^\[sweep s\] trial (\d+) \((\d+) of (\d+)\) epoch (\d+): val/acc ([0-9.]+) "
                   r"\(its best ([0-9.]+)\)$")
FINISHED = re.compile(r"^\[sweep s\] trial (\d+) \((\d+) of (\d+)\) COMPLETE val/acc_best ([0-9.]+) \| "
                      r"best so far ([0-9.]+) \(trial (\d+)\) \| run (\S+)$")


@pytest.fixture(scope="module")
def dvs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvs")
    make_dvsgesture(root, n_per_split=100, events=200)
    return root


def tiny_config(tmp_path, dataset: str, data_dir, spec: str, **data) -> str:
    config = yaml.safe_load((ROOT / "configs" / f"{dataset}.yaml").read_text())
    config["model"]["spec"] = spec
    config["data"]["init_args"].update(data_dir=str(data_dir), batch_size=8, num_workers=0, **data)
    config["trainer"] = {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2,
                         "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                         "enable_model_summary": False}
    config["run"] = {"dir": str(tmp_path / "runs"), "wandb": "disabled"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return str(tmp_path / "config.yaml")


def sweep(tmp_path, dataset: str, config: str, *extra, space=None) -> int:
    args = ["sweep", "--dataset", dataset, "--config", config, "--study", "s",
            "--storage", str(tmp_path / "studies" / "s.journal"), "--studies-dir", str(tmp_path / "studies"),
            "--wandb", "disabled", *extra]
    if space is not None:
        (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
        args += ["--space", str(tmp_path / "space.yaml")]
    return cli_main(args)


def check_progress(out: str, n: int, epochs: int, multiworker: bool = False) -> dict:
    """Every trial of the command: one started line with its parameters, one line per epoch, one final line whose
    'best so far' is the best of the trials finished until then (with several workers: at least that, and the value of
    the trial it names); k runs 1..n. Returns the finals by trial."""
    lines = out.splitlines()
    started = {int(m[1]): m for m in map(STARTED.match, lines) if m}
    finals = {int(m[1]): m for m in map(FINISHED.match, lines) if m}
    assert sorted(int(m[2]) for m in started.values()) == list(range(1, n + 1)), out
    assert set(started) == set(finals) and all(int(m[3]) == n for m in [*started.values(), *finals.values()])
    for number, m in started.items():
        params = dict(kv.split("=") for kv in m[4].split())
        assert set(params) == {"model.lr", "data.frames"} and params["data.frames"] in ("4", "6")
        assert m[5].endswith(f"s-t{number:04d}")
        mine = [e for e in map(EPOCH.match, lines) if e and int(e[1]) == number]
        assert [int(e[4]) for e in mine] == list(range(epochs))
        bests = [float(e[6]) for e in mine]
        assert bests == [max(float(e[5]) for e in mine[:i + 1]) for i in range(len(mine))]  # its best so far
        assert float(finals[number][4]) == pytest.approx(bests[-1], abs=1e-4)
    best = -1.0
    for m in sorted(finals.values(), key=lambda m: lines.index(m[0])):  # in the order printed
        best = max(best, float(m[4]))
        # the study's best: at least every trial printed until now; another worker's trial may have finished in
        # the storage before its own line reached the terminal, so it may be ahead, but it names a real trial
        assert float(m[5]) >= best - 1e-4
        assert float(m[5]) == pytest.approx(float(finals[int(m[6])][4]), abs=1e-4)
        if not multiworker:  # one worker prints each trial before the next starts: exactly the best printed
            assert float(m[5]) == pytest.approx(best, abs=1e-4)
    return finals


def test_one_worker_prints_each_trials_progress(dvs_dir, tmp_path, capsys):
    config = tiny_config(tmp_path, "dvsgesture", dvs_dir, "c4-ap-fc11", size=16)
    assert sweep(tmp_path, "dvsgesture", config, "--trials", "3", space=SPACE) == 0
    check_progress(capsys.readouterr().out, n=3, epochs=2)


def test_two_workers_show_every_trial_and_build_each_frame_cache_once(dvs_dir, tmp_path, capsys):
    config = tiny_config(tmp_path, "dvsgesture", dvs_dir, "c4-ap-fc11", size=16, cache_dir=str(tmp_path / "cache"))
    assert sweep(tmp_path, "dvsgesture", config, "--trials", "4", "--workers", "2", space=SPACE) == 0
    out = capsys.readouterr().out
    check_progress(out, n=4, epochs=2, multiworker=True)
    logs = "".join(p.read_text() for p in (tmp_path / "studies" / "s-logs").glob("worker*.log"))
    built = re.findall(r"data: building the DVS Gesture frame cache (\S+) ", logs)
    assert len(built) == len(set(built)) and built  # each setting's cache once, by whichever worker came first
    settings = {Path(p).parent.name for p in built}
    assert settings == {p.name for p in (tmp_path / "cache" / "dvsgesture").iterdir()}
    frames = {m[4] for m in map(STARTED.match, out.splitlines()) if m}
    assert len(settings) == len({re.search(r"data.frames=(\d+)", f)[1] for f in frames})


@pytest.mark.parametrize("dataset", ["dvsgesture", "nmnist", "cifar10dvs"])
def test_shipped_event_spaces_fit_their_configs(dataset, capsys):
    from ttfs_lab.overrides import load_yaml
    from ttfs_lab.sweep.study import default_space
    from ttfs_lab.sweep.validate import check_config

    space = load_space(default_space(dataset))
    assert space.path.endswith(f"sweeps/{dataset}.yaml")
    config = ROOT / "configs" / f"{dataset}.yaml"
    check_config(load_yaml(config), space, str(config))
    assert "model.T has no effect" not in capsys.readouterr().out
    knobs = {k.name: k for k in space.knobs}
    assert "data.init_args.frames" in knobs and "model.T" not in knobs


def test_the_dvsgesture_space_trains_every_trial_at_the_reduced_resolution():
    space = load_space(str(ROOT / "sweeps" / "dvsgesture.yaml"))
    size = {k.name: k for k in space.knobs}["data.init_args.size"]
    assert size.choices == (32,) and space.epochs <= 10


def test_a_cifar10dvs_sweep_runs_on_its_shipped_space(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network access"))
    make_cifar10dvs(tmp_path / "data")  # full size: tonic's own check passes in the trial, nothing relaxed
    config = tiny_config(tmp_path, "cifar10dvs", tmp_path / "data", "c4-ap-fc10")
    assert sweep(tmp_path, "cifar10dvs", config, "--trials", "1", "--epochs", "1") == 0
    out = capsys.readouterr().out
    (started,) = [m for m in map(re.compile(r"^\[sweep s\] trial 0 \(1 of 1\) started \| (.*) \|").match,
                                 out.splitlines()) if m]
    assert "data.init_args.size=32" in started[1]
    assert re.search(r"data: building the CIFAR10-DVS frame cache \S+/cifar10dvs/T(5|10)_s32_dn10000_bin/all "
                     r"\(1000 recordings, once\)", out)
    assert re.search(r"^\[sweep s\] trial 0 \(1 of 1\) COMPLETE val/acc_best [0-9.]+ \| best so far", out, re.M)


def test_the_final_line_holds_the_best_complete_trial_so_far():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from ttfs_lab.sweep.progress import Progress, best_so_far

    def trial(number, state, value=None, **attrs):
        t = create_trial(state=state, value=value, params={"model.lr": 0.01},
                         distributions={"model.lr": FloatDistribution(1e-4, 1e-1)}, user_attrs=attrs,
                         intermediate_values={1: 0.3} if state == TrialState.PRUNED else None)
        t.number = number
        return t

    trials = [trial(0, TrialState.COMPLETE, 0.5, run_id="s-t0000"), trial(1, TrialState.PRUNED, run_id="s-t0001"),
              trial(2, TrialState.COMPLETE, 0.75, run_id="s-t0002"), trial(3, TrialState.COMPLETE, 0.6)]
    assert best_so_far(trials[:2]) == (0.5, 0) and best_so_far(trials) == (0.75, 2) and best_so_far([]) is None
    progress = Progress("s", total=4)
    assert progress.finished_line(trials[1], trials[:2]) == (
        "[sweep s] trial 1 (1 of 4) PRUNED at epoch 1 (val/acc 0.3000) | best so far 0.5000 (trial 0) | run s-t0001")
    assert progress.finished_line(trials[3], trials) == (
        "[sweep s] trial 3 (2 of 4) COMPLETE val/acc_best 0.6000 | best so far 0.7500 (trial 2) | run -")
    assert "no trial complete yet" in Progress("s", 1).finished_line(trials[1], trials[1:2])
