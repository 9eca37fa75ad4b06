"""ttfs-lab sweep on a real PostgreSQL server (started here, thrown away at the end): three machines share one
study, one is killed with SIGKILL in the middle of a trial and Optuna's heartbeat fails that trial, the killed
machine's command is run again on a standby machine, and optuna-dashboard serves the study. Bad storage URLs
are one line.

The "machines" are processes on this host (``as_machine.py``), each with its own run and studies folders and its
own host name: the same-host check of ``fail_dead_trials`` cannot see across machines, so only the heartbeat can
fail the killed machine's trial, as on separate computers.
"""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from postgres_server import PostgresServer, find_binaries, free_port
from ttfs_lab.cli import main as cli_main

HERE = Path(__file__).parent
TESTS = HERE.parent
ROOT = TESTS.parent
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S, GRACE_S = 2, 6  # --heartbeat 2; the grace period is 3x
SPACE = {
    "objective": "acc",
    "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    "params": {"model.lr": {"low": 1.0e-3, "high": 2.0e-2, "log": True}, "model.init": ["ettfs", "kaiming"],
               "model.norm": [True, False]},
}


@pytest.fixture(scope="module")
def server():
    bindir, why = find_binaries()
    if bindir is None:
        pytest.skip(why)
    pg = PostgresServer(bindir)
    if pg.why_not:
        pytest.skip(pg.why_not)
    try:
        yield pg.start()
    finally:
        pg.stop()
        assert not pg.root.exists()


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """The trial config (the mnist5k config with a tiny network, 2 batches per stage, no test) and the space."""
    config = yaml.safe_load((ROOT / "configs" / "mnist5k.yaml").read_text())
    config["model"]["spec"] = "c4-ap-fc16-fc10"
    config["data"]["init_args"]["batch_size"] = 16
    # limits of 2, not 1: jsonargparse reads Lightning's Union[float, int] 1 as 1.0, i.e. 100% of the batches
    config["trainer"] = {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 2, "accelerator": "cpu",
                         "devices": 1, "enable_progress_bar": False, "enable_model_summary": False}
    config["run"] = {**config.get("run", {}), "test": False}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path / "config.yaml", tmp_path / "space.yaml"


def machine(tmp_path: Path, name: str, url: str, trials: int, *extra: str, standby=None) -> subprocess.Popen:
    """`ttfs-lab sweep` on "machine" ``name``: its own folders, the shared storage URL, its output in a log."""
    config, space = tmp_path / "config.yaml", tmp_path / "space.yaml"
    home = tmp_path / name
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "TZ": "UTC", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(HERE / "as_machine.py"), name, *(["--standby", str(standby)] if standby else []),
           "sweep", "--dataset", "mnist5k", "--config", str(config), "--space", str(space), "--storage", url,
           "--study", "s", "--trials", str(trials), "--runs-dir", str(home / "runs"),
           "--studies-dir", str(home / "studies"), "--wandb", "disabled", "--heartbeat", str(HEARTBEAT_S), *extra]
    return subprocess.Popen(cmd, cwd=home, env=env, stdout=open(home / "out.log", "wb"), stderr=subprocess.STDOUT)


def query(url: str, sql: str, *args):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchone()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_three_machines_share_one_postgresql_study_and_the_heartbeat_fails_a_killed_machines_trial(server, tmp_path):
    url = server.create_database("three_machines")
    write_inputs(tmp_path)
    marker, go = tmp_path / "sleeping.pid", tmp_path / "go"
    sleeper = json.dumps([{"class_path": "sweep_helpers.SleepOnce", "init_args": {"marker": str(marker)}}])
    procs, dashboard = {}, None
    start = time.monotonic()
    try:
        procs["node-a"] = machine(tmp_path, "node-a", url, 2)
        procs["node-b"] = machine(tmp_path, "node-b", url, 2)
        # node-c's trial sleeps in its first training batch (sweep_helpers.SleepOnce): it is killed there
        procs["node-c"] = machine(tmp_path, "node-c", url, 1, "--set", f"trainer.callbacks={sleeper}")
        procs["node-d"] = machine(tmp_path, "node-d", url, 1, standby=go)  # up, waiting for node-c's job
        while not (marker.exists() and marker.read_text().strip()):
            assert procs["node-c"].poll() is None, (tmp_path / "node-c" / "out.log").read_text()[-3000:]
            assert time.monotonic() - start < 240, "node-c never reached its first training batch"
            time.sleep(0.1)
        assert int(marker.read_text()) == procs["node-c"].pid
        os.kill(procs["node-c"].pid, signal.SIGKILL)
        (killed_at,) = query(url, "SELECT localtimestamp")  # the server's clock (UTC), which the heartbeats use
        port = free_port()
        dashboard = subprocess.Popen([sys.executable, "-m", "ttfs_lab.cli", "sweep", "--dashboard", "--storage",
                                      url, "--study", "s", "--port", str(port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # node-c's job goes to node-d once node-c's last heartbeat (before the kill) is older than the grace
        # period: node-d's first trial start then finds the trial stale, unless node-a or node-b did already
        time.sleep(GRACE_S + 1)
        go.touch()
        for name, proc in procs.items():
            proc.wait(timeout=max(1.0, 300 - (time.monotonic() - start)))
        logs = {name: (tmp_path / name / "out.log").read_text() for name in procs}
        assert procs["node-c"].returncode == -signal.SIGKILL
        for name in ("node-a", "node-b", "node-d"):
            assert procs[name].returncode == 0, logs[name][-3000:]

        study = optuna.load_study(study_name="s", storage=url)
        trials = study.trials
        assert [t.number for t in trials] == list(range(6))  # no trial number lost
        (killed,) = [t for t in trials if t.state == TrialState.FAIL]
        assert killed.user_attrs["worker"] == {**killed.user_attrs["worker"], "host": "node-c",
                                               "pid": procs["node-c"].pid}
        finished = [t for t in trials if t.state in DONE]
        assert len(finished) == 2 + 2 + 1  # what the three machines asked for (node-c's trial run by node-d)
        assert all(t.intermediate_values for t in finished)  # every trial reported to the pruner through Lightning

        # failed by Optuna's heartbeat: not by its worker, not by a same-host check ("error" attribute), and only
        # once its last heartbeat was older than the grace period
        assert "error" not in killed.user_attrs
        line = f"trial {killed.number} marked FAIL: no heartbeat for more than {GRACE_S} s"
        (failer,) = [name for name, log in logs.items() if line in log]
        assert failer != "node-c"
        (beat,) = query(url, "SELECT heartbeat FROM trial_heartbeats WHERE trial_id = %s", killed._trial_id)
        failed_at = killed.datetime_complete  # the failing worker's clock: UTC too (TZ=UTC)
        print(f"\nkilled trial {killed.number}: last heartbeat {(killed_at - beat).total_seconds():.1f} s before "
              f"the kill; marked FAIL {(failed_at - killed_at).total_seconds():.1f} s after the kill, "
              f"{(failed_at - beat).total_seconds():.1f} s after its last heartbeat (grace {GRACE_S} s), by {failer}")
        assert (killed_at - beat).total_seconds() < HEARTBEAT_S + 2  # it beat until it was killed
        assert (failed_at - beat).total_seconds() > GRACE_S  # not before the grace period was over
        assert (failed_at - killed_at).total_seconds() < GRACE_S + 30  # by the next trial start after it

        # each trial ran once, on one machine, in that machine's run folder
        runs = [p for name in procs for p in (tmp_path / name / "runs").iterdir()]
        assert sorted(p.name for p in runs) == sorted(t.user_attrs["run_id"] for t in trials)
        folders = {p.name: p for p in runs}
        for t in trials:
            assert folders[t.user_attrs["run_id"]].parent.parent.name == t.user_attrs["worker"]["host"]
        started = [int(n) for log in logs.values()
                   for n in re.findall(r"\[sweep s\] trial (\d+)\b[^|\n]*started", log)]
        assert sorted(started) == [t.number for t in trials]  # each trial number started once
        meta = json.loads((folders[killed.user_attrs["run_id"]] / "meta.json").read_text())
        assert meta["status"] == "failed"  # its folder is visible to the machine that failed it (same disk)

        # the best configuration, written by the command that finished last
        last = max(("node-a", "node-b", "node-d"),
                   key=lambda n: (tmp_path / n / "studies" / "s-best.yaml").stat().st_mtime)
        best = yaml.safe_load((tmp_path / last / "studies" / "s-best.yaml").read_text())
        params = study.best_trial.params
        assert (best["model"]["lr"], best["model"]["init"], best["model"]["norm"]) == (
            params["model.lr"], params["model.init"], params["model.norm"])

        # optuna-dashboard on the same URL serves the study
        while True:
            try:
                summaries = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert dashboard.poll() is None and time.monotonic() - start < 300, "the dashboard did not start"
                time.sleep(0.3)
        (entry,) = [s for s in summaries if s["study_name"] == "s"]
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{entry['study_id']}")
        assert [t["number"] for t in detail["trials"]] == [t.number for t in trials]
        assert [t["state"].upper() for t in detail["trials"]] == [t.state.name for t in trials]
        assert [t["number"] for t in detail["best_trials"]] == [study.best_trial.number]
        print(f"the whole scenario: {time.monotonic() - start:.0f} s")
    finally:
        for proc in [*procs.values(), dashboard]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("storage,message", [
    ("postgresql://ttfs@127.0.0.1:{closed}/optuna", "Connection refused"),
    ("postgresql://ttfs@127.0.0.1:{port}/no_such_db", 'database "no_such_db" does not exist'),
    ("postgresql://ttfs@127.0.0.1:notaport/optuna", "notaport"),
    ("mysql://u@127.0.0.1:{closed}/optuna", "database driver is not installed"),
])
def test_a_bad_storage_url_is_one_line(request, tmp_path, capsys, storage, message):
    config, space = write_inputs(tmp_path)
    port = request.getfixturevalue("server").port if "{port}" in storage else None  # only this one needs it
    storage = storage.format(closed=free_port(), port=port)
    args = ["--study", "s", "--storage", storage]
    assert cli_main(["sweep", "--config", str(config), "--space", str(space), "--studies-dir",
                     str(tmp_path / "studies"), "--runs-dir", str(tmp_path / "runs"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: storage ") and message in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "studies").exists()  # nothing started
    assert cli_main(["sweep", "--dashboard", *args]) == 2
    out, err = capsys.readouterr()
    assert "\n" not in err.strip() and err.startswith("error: storage ") and message in err, err
    assert "optuna-dashboard for" not in out  # no banner for a dashboard that cannot start


def test_heartbeat_reaches_worker_processes_and_must_be_positive(capsys):
    from ttfs_lab.sweep.storage import heartbeat, set_heartbeat
    from ttfs_lab.sweep.study import worker_command

    try:
        set_heartbeat(7)
        assert heartbeat() == (7, 21)
        assert worker_command(Path("plan.json"), 3, 1)[-2:] == ["--heartbeat", "7"]
    finally:
        set_heartbeat(60)
    assert cli_main(["sweep", "--heartbeat", "0"]) == 2
    assert "--heartbeat 0 is not valid" in capsys.readouterr().err
