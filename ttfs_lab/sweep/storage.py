"""Where a study lives, and how a study survives a worker that dies in the middle of a trial.

Storage: a journal file (``sweeps/studies/<study>.journal`` by default; any path without ``://``), or any Optuna
RDB URL (``sqlite:///sweeps/studies/s.db``, ``postgresql://user:pw@host/db``) so that workers on many machines
share one study.

Dead workers: every trial records its worker (host, pid, process start time) as the user attribute ``worker``.
At the start and at the end of every sweep command, a RUNNING trial whose worker process on this host no longer
exists is marked FAIL (its run record too), so a killed worker never blocks the study and the numbering
continues. RDB storages also get Optuna's heartbeat (``heartbeat_interval`` / ``grace_period``), which fails
stale trials of workers on other machines too; the journal storage has no heartbeat in Optuna 5.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import warnings
from pathlib import Path
from typing import Iterator, Optional

from ttfs_lab.errors import ConfigError, first_line
from ttfs_lab.record import RunRecord

HEARTBEAT_S = 60
GRACE_S = 180
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_study_name(name: str) -> str:
    if not _STUDY_NAME.match(name or ""):
        raise ConfigError(f"--study {name!r} is not valid; use letters, digits, '.', '_' or '-' (it names run folders)")
    return name


def is_url(spec: str) -> bool:
    return "://" in spec


def resolve_storage(storage: Optional[str], studies_dir: str, study: str) -> str:
    """A URL as given, or the absolute path of the journal file (default ``<studies_dir>/<study>.journal``)."""
    if storage is None:
        return str((Path(studies_dir) / f"{study}.journal").resolve())
    if is_url(storage):
        return storage
    return str(Path(storage).expanduser().resolve())


def shown(spec: str) -> str:
    """The storage for printing, with any password masked."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", spec)


def open_storage(spec: str):
    """The Optuna storage of ``spec``; a bad URL or an unreachable database is a one-line ``ConfigError``."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if not is_url(spec):
            Path(spec).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(spec))
        if spec.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            return JournalStorage(JournalRedisBackend(spec))
        engine = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(spec, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
    except Exception as err:  # sqlalchemy / driver / file errors, in many types
        raise ConfigError(f"storage {shown(spec)}: cannot open it ({first_line(err)}); check --storage") from None


# --- worker identity and liveness ---------------------------------------------------------------------------
def _proc_stat(pid: int) -> Optional[tuple[str, int]]:
    """(state, start time in clock ticks) of a process from /proc, or None where /proc is not available."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def worker_identity() -> dict:
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": stat[1] if stat else None}


def is_alive(identity: dict) -> Optional[bool]:
    """Whether the worker process still runs; None when it ran on another host (cannot be checked from here)."""
    if identity.get("host") != socket.gethostname():
        return None
    pid = identity.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False
    return identity.get("start") is None or identity.get("start") == start  # else the pid was reused


def fail_dead_trials(study) -> tuple[list, list]:
    """Mark RUNNING trials whose worker on this host died as FAIL; returns (failed, unverifiable) frozen trials.

    ``unverifiable``: RUNNING trials of workers on other hosts (left alone)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed, elsewhere = [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.user_attrs.get("worker")
        if not isinstance(identity, dict):
            continue  # the trial has only just started: its worker writes its identity first thing
        alive = is_alive(identity)
        if alive is None:
            elsewhere.append(trial)
            continue
        if alive:
            continue
        message = f"worker process {identity.get('pid')} on {identity.get('host')} died during the trial"
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "error", message)
            study.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another command failed it first, or its worker finished it just now
        _mark_run_failed(trial.user_attrs.get("run_dir"), message)
        failed.append(trial)
    return failed, elsewhere


def _mark_run_failed(run_dir: Optional[str], message: str) -> None:
    """The run record of a killed trial still says ``running``: say ``failed`` (RunRecorder never got to)."""
    if run_dir:
        RunRecord(Path(run_dir)).fail_if_running(message)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (flock) held for the block; a no-op where flock does not exist."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
