"""Plain helpers of the database fixtures: the test server, the one template builder."""

from __future__ import annotations

import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from festmon_tui.db.migrations import migrate

_counter = itertools.count()


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def build_template(admin_dsn: str, template_dsn: str, name: str) -> None:
    """(Re)create database `name` with both migration sets applied: what every test clones."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(template_dsn)
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()


async def create_database(admin_dsn: str, prefix: str, template: str | None) -> str:
    """A new database with a name unique to this process, cloned from `template` if given."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return name


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


class PgServer:
    """The test server: an admin DSN and a way to name databases on it."""

    def __init__(self, admin_dsn: str, embedded: object | None) -> None:
        self.admin_dsn = admin_dsn
        self.embedded = embedded

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    async def create_database(self, template: str | None = None) -> str:
        return await create_database(self.admin_dsn, "festmon_test", template)

    async def drop_database(self, name: str) -> None:
        await drop_database(self.admin_dsn, name)
