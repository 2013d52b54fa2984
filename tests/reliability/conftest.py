"""Fixtures of the reliability tests: their own TCP PostgreSQL, a migrated template, a proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.reliability.proxy import FaultProxy
from tests.reliability.server import (
    ADMIN_PASSWORD,
    TEMPLATE,
    Database,
    ReliabilityServer,
    create_database,
    drop_database,
)
from tests.support import build_template


async def _build_template(server: ReliabilityServer) -> None:
    admin = await asyncpg.connect(server.admin_dsn())
    try:
        # Over TCP the superuser needs its password (scram), like a real deployment's login.
        statement = await admin.fetchval(
            "SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)", ADMIN_PASSWORD
        )
        await admin.execute(statement)
    finally:
        await admin.close()
    await build_template(server.admin_dsn(), server.admin_dsn(TEMPLATE), TEMPLATE)


@pytest.fixture(scope="session")
def rel_server() -> Iterator[ReliabilityServer]:
    """A PostgreSQL on 127.0.0.1 that asks for passwords over TCP; never skipped."""
    server = ReliabilityServer()
    try:
        asyncio.run(_build_template(server))
        yield server
    finally:
        server.close()


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
