"""A throw-away PostgreSQL server for tests: its own data folder under a temporary directory, a free TCP port on
127.0.0.1, trust authentication, no fsync; stopped and removed at the end.

The server refuses to run as root: under root it runs as the system user ``postgres`` (which Debian's package
creates), else as a system user ``ttfs-postgres`` created here with ``useradd``. Where the server binaries are
missing (``make test`` installs Debian's ``postgresql`` when it runs as root with apt-get), ``find_binaries``
says why, for the skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

SYSTEM_USER = "ttfs-postgres"
SUPERUSER = "ttfs"


def find_binaries() -> tuple[Optional[Path], str]:
    """(folder holding initdb and postgres, "") or (None, why not)."""
    candidates = []
    if shutil.which("initdb"):
        candidates.append(Path(os.path.realpath(shutil.which("initdb"))).parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                    if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(debian)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder, ""
    return None, ("PostgreSQL server not installed (no initdb / postgres on PATH or in /usr/lib/postgresql/*/bin); "
                  "`make test` as root installs Debian's postgresql, else: apt-get install postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> tuple[Optional[pwd.struct_passwd], str]:
    """The unprivileged account to run the server as (None: run as this user, who is not root), or why none."""
    if os.geteuid() != 0:
        return None, ""
    for name in ("postgres", SYSTEM_USER):
        try:
            return pwd.getpwnam(name), ""
        except KeyError:
            continue
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                          capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"running as root and cannot create the system user {SYSTEM_USER}: {made.stderr.strip()}"
    return pwd.getpwnam(SYSTEM_USER), ""


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user, self.why_not = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="ttfs-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        env = {**os.environ, "HOME": str(self.root), "USER": self.user.pw_name, "LOGNAME": self.user.pw_name}
        return dict(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], env=env)

    def start(self, timeout: float = 60.0) -> "PostgresServer":
        kw = self._as_user()
        init = subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"], cwd=self.root, capture_output=True,
                              text=True, **kw)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()[-2000:]}")
        self.log = self.root / "server.log"
        with open(self.log, "wb") as log:
            if self.user is not None:
                os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "timezone=UTC", "-c", "log_timezone=UTC"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, **kw)
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections: {self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnects clients, aborts their transactions), then the folder is removed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
