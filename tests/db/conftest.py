"""Fixtures shared by the database tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import PgServer


@pytest.fixture
async def two_databases(
    pg_server: PgServer, template_database: str
) -> AsyncIterator[tuple[str, str]]:
    """Two fresh clones of the template database (DSNs), for runs that must match."""
    names = [await pg_server.create_database(template_database) for _ in range(2)]
    try:
        yield pg_server.dsn(names[0]), pg_server.dsn(names[1])
    finally:
        for name in names:
            await pg_server.drop_database(name)
