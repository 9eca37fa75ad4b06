"""Where a study lives, and how a study survives a worker that dies in the middle of a trial.

Storage: a journal file (``sweeps/studies/<study>.journal`` by default; any path without ``://``), or any Optuna
RDB URL (``sqlite:///sweeps/studies/s.db``, ``postgresql://user:pw@host/db``) so that workers on many machines
share one study. ``postgresql://`` (or ``postgres://``) uses whichever driver is installed, psycopg 3 first
(``pip install 'psycopg[binary]'``, in the ``dev`` and ``postgres`` extras), then psycopg2.

Dead workers: every trial records its worker (host, pid, process start time) as the user attribute ``worker``.
At the start and at the end of every sweep command, a RUNNING trial whose worker process on this host no longer
exists is marked FAIL (its run record too), so a killed worker never blocks the study and the numbering
continues. RDB storages also get Optuna's heartbeat: the worker of a running trial records a heartbeat every
``heartbeat`` seconds (``--heartbeat``, default 60), and a RUNNING trial whose last heartbeat is older than the
grace period (3 x that) is marked FAIL by the next worker, on any machine, that starts a trial; its run record
too where its folder is visible from that machine. The journal storage has no heartbeat in Optuna 5.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional

from ttfs_lab.errors import ConfigError, first_line
from ttfs_lab.record import RunRecord

HEARTBEAT_S = 60
GRACE_FACTOR = 3  # grace period = GRACE_FACTOR x heartbeat interval (Optuna's own default is 2x)
CONNECT_TIMEOUT_S = 10
_heartbeat_s = HEARTBEAT_S  # of the RDB storages this process opens; set_heartbeat() changes it
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


def set_heartbeat(seconds: int) -> None:
    """The heartbeat interval of the RDB storages this process opens from now on (grace: GRACE_FACTOR x)."""
    global _heartbeat_s
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise ConfigError(f"--heartbeat {seconds} is not valid; use a whole number of seconds, 1 or more")
    _heartbeat_s = seconds


def heartbeat() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds of the RDB storages this process opens."""
    return _heartbeat_s, GRACE_FACTOR * _heartbeat_s


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
        url, engine = _sqlalchemy_url(spec), None
        if spec.startswith("sqlite"):
            engine = {"connect_args": {"timeout": 60}}
        elif url.startswith("postgresql") and "connect_timeout=" not in spec:
            engine = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
        return _rdb_storage(url, engine)
    except ConfigError:
        raise
    except ImportError as err:  # Optuna's "Failed to import DB access module" around the driver's ImportError
        cause = first_line(err.__cause__ or err)
        raise ConfigError(f"storage {shown(spec)}: its database driver is not installed ({cause}); "
                          "install it, e.g. pip install 'psycopg[binary]' for PostgreSQL") from None
    except Exception as err:  # sqlalchemy / driver / file errors, in many types
        reason = re.sub(r"^\([\w.]+\) ", "", first_line(err))  # SQLAlchemy's "(psycopg.OperationalError) "
        raise ConfigError(f"storage {shown(spec)}: cannot open it ({reason}); check --storage") from None


def _rdb_storage(url: str, engine: Optional[dict]):
    """Optuna's RDBStorage with the heartbeat. Workers on several machines that start on an empty database at
    once race to create its tables (one of them gets a duplicate-table error): such an error is retried."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    interval, grace = heartbeat()
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=interval,
                                                  grace_period=grace, heartbeat_stale_trial_callback=heartbeat_failed)
        except (IntegrityError, ProgrammingError):
            if attempt == 3:
                raise
            time.sleep(0.5 + attempt)


def _sqlalchemy_url(spec: str) -> str:
    """``postgresql://`` / ``postgres://`` with the PostgreSQL driver that is installed (SQLAlchemy's default
    driver depends on its version: psycopg2 in 2.0, psycopg 3 in 2.1); every other URL as given."""
    import importlib.util

    scheme, _, rest = spec.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return spec
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise ConfigError(f"storage {shown(spec)}: no PostgreSQL driver is installed; pip install 'psycopg[binary]' "
                      "(or pip install -e '.[dev]')")


def heartbeat_failed(study, trial) -> None:
    """Optuna's heartbeat has just failed ``trial`` (its worker stopped beating): say so in this worker's log,
    and mark its run record failed where its folder is visible from here (same machine, or a shared disk)."""
    identity = trial.user_attrs.get("worker") or {}
    _, grace = heartbeat()
    message = (f"no heartbeat for more than {grace} s: its worker (pid {identity.get('pid')} on "
               f"{identity.get('host')}) stopped during the trial")
    print(f"[sweep {study.study_name}] trial {trial.number} marked FAIL: {message}", flush=True)
    try:
        _mark_run_failed(trial.user_attrs.get("run_dir"), message)
    except OSError as err:  # another machine's folder on a read-only share, ...: the study is what counts
        print(f"[sweep {study.study_name}] note: run record of trial {trial.number} not updated ({err})", flush=True)


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
