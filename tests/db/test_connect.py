"""Connections carry festmon's name, timeouts and pooler-safe options against a real server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from festmon_tui.db.connect import (
    ConnectOptions,
    DatabaseUnavailable,
    connect,
    create_pool,
    ping,
)
from festmon_tui.db.errors import translated


async def test_a_connection_names_itself_festmon_and_has_a_statement_timeout(
    empty_db_dsn: str,
) -> None:
    conn = await connect(ConnectOptions(empty_db_dsn, False, 5.0, 1234))
    try:
        assert await conn.fetchval("SHOW application_name") == "festmon"
        assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
        with pytest.raises(asyncpg.QueryCanceledError):
            await conn.execute("SELECT pg_sleep(5)")
    finally:
        await conn.close()


async def test_pooled_mode_runs_queries_without_prepared_statement_cache(empty_db_dsn: str) -> None:
    conn = await connect(ConnectOptions(empty_db_dsn, True, 5.0, 30000))
    try:
        for _ in range(3):
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
        assert conn._stmt_cache.get_max_size() == 0  # the point of pooled mode
    finally:
        await conn.close()


async def test_a_missing_database_is_a_clear_error_without_the_password(empty_db_dsn: str) -> None:
    parts = urlsplit(empty_db_dsn.replace("postgres:@", "postgres:hunter2@"))
    bad = urlunsplit((parts.scheme, parts.netloc, "/no_such_database", parts.query, ""))
    with pytest.raises(DatabaseUnavailable) as info:
        await connect(ConnectOptions(bad, False, 5.0, 30000))
    assert "does not exist" in str(info.value)
    assert "hunter2" not in str(info.value)


async def test_a_pooled_connection_keeps_its_statement_timeout_after_being_released(
    empty_db_dsn: str,
) -> None:
    """asyncpg's pool sends RESET ALL on release: the session's timeout must survive it."""
    pool = await create_pool(ConnectOptions(empty_db_dsn, False, 5.0, 1234), min_size=1, max_size=1)
    try:
        for _ in range(3):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
                assert await conn.fetchval("SHOW tcp_keepalives_idle") in {"30", "0"}
                await conn.execute("SET work_mem = '1MB'")  # a caller's change is still reset
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW work_mem") != "1MB"
    finally:
        await pool.close()


async def test_a_terminated_session_is_unavailable_without_a_doubled_prefix(
    empty_db_dsn: str,
) -> None:
    """Callers say 'database unavailable: <reason>' themselves (the headless log, refusals):
    the reason must not say it again ('database unavailable: database unavailable: ...')."""
    conn = await asyncpg.connect(empty_db_dsn)
    admin = await asyncpg.connect(empty_db_dsn)
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        with pytest.raises(DatabaseUnavailable) as away, translated():
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
        await admin.close()
    message = str(away.value)
    assert message and not message.lower().startswith("database unavailable"), message


async def test_a_ping_whose_connection_dies_on_release_says_unavailable(empty_db_dsn: str) -> None:
    """The server going away between the ping's answer and the pool's reset on release (a
    shutdown, a stalled network) must read as 'unavailable', not escape as asyncpg's raw error:
    the monitor's refresh loop only survives the errors it knows (CI: the supervisor crashed on
    an AdminShutdownError from the release)."""

    async def _server_goes_away(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    pool = await asyncpg.create_pool(empty_db_dsn, min_size=1, max_size=1, reset=_server_goes_away)
    try:
        with pytest.raises(DatabaseUnavailable, match="did not answer"):
            await ping(pool, 5)
    finally:
        pool.terminate()
