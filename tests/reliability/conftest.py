"""Fixtures of the reliability tests: their own TCP PostgreSQL, a migrated template, a proxy."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from festmon_tui.db.migrations import migrate
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import ADMIN_PASSWORD, ReliabilityServer

TEMPLATE = "reliability_template"
_names = itertools.count()


async def _build_template(server: ReliabilityServer) -> None:
    admin = await asyncpg.connect(server.admin_dsn())
    try:
        # Over TCP the superuser needs its password (scram), like a real deployment's login.
        statement = await admin.fetchval(
            "SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)", ADMIN_PASSWORD
        )
        await admin.execute(statement)
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.admin_dsn(TEMPLATE))
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def rel_server() -> Iterator[ReliabilityServer]:
    """A PostgreSQL on 127.0.0.1 that asks for passwords over TCP; never skipped."""
    server = ReliabilityServer()
    try:
        asyncio.run(_build_template(server))
        yield server
    finally:
        server.close()


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
    name = f"rel_{os.getpid()}_{next(_names)}"
    admin = await asyncpg.connect(server.admin_dsn())
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return name


async def drop_database(server: ReliabilityServer, name: str) -> None:
    if not server.running:
        server.start()
    admin = await asyncpg.connect(server.admin_dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def rel_db(rel_server: ReliabilityServer) -> AsyncIterator[Database]:
    """A fresh database with the payment and monitoring schemas."""
    name = await create_database(rel_server)
    try:
        yield Database(rel_server, name)
    finally:
        await drop_database(rel_server, name)


@pytest.fixture
async def reference_db(rel_server: ReliabilityServer) -> AsyncIterator[Database]:
    """A second fresh database, for the fault-free run over the same data."""
    name = await create_database(rel_server)
    try:
        yield Database(rel_server, name)
    finally:
        await drop_database(rel_server, name)


@pytest.fixture
async def proxy(rel_server: ReliabilityServer) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the reliability server."""
    fault_proxy = await FaultProxy("127.0.0.1", rel_server.port).start()
    try:
        yield fault_proxy
    finally:
        await fault_proxy.close()
