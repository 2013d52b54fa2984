"""festmon demo's own database, and whether a database may receive simulated payments."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.db.simulation.records import Conn, SimulationRefused
from festmon_tui.db.simulation.store import REFERENCE_SCHEMA_SQL, SCHEMA_SQL

# Databases festmon demo may drop and re-create: only its own.
DEMO_DATABASE = "festmon_demo"

DEMO_BUSY_SQL = """
SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
"""


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database of the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def payment_schema_state(conn: Conn) -> str:
    """'reference' (festmon's demo/test payment schema), 'absent', or 'foreign' (real tables)."""
    with translated():
        row = await conn.fetchrow(SCHEMA_SQL)
        assert row is not None
        if row["ledger"] and await conn.fetchval(REFERENCE_SCHEMA_SQL):
            return "reference"
    return "foreign" if row["payment_tables"] else "absent"


async def prepare_demo_database(admin_dsn: str, database: str = DEMO_DATABASE) -> str:
    """Drop and re-create festmon demo's own database on the embedded server; return its DSN.

    Refuses while another session uses it (another demo or a dashboard watching it).
    """
    with translated():
        conn = await asyncpg.connect(admin_dsn)
        try:
            busy = await conn.fetchval(DEMO_BUSY_SQL, database)
            if busy:
                raise SimulationRefused(
                    f"database {database} is in use by {busy} other session(s) "
                    "(another festmon demo?); stop it first"
                )
            # Identifiers cannot be parameters; `database` is festmon's constant, quoted anyway.
            quoted = '"' + database.replace('"', '""') + '"'
            await conn.execute(f"DROP DATABASE IF EXISTS {quoted}")
            await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
    return with_database(admin_dsn, database)
