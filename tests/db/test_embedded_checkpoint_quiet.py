"""Quitting `festmon demo` prints nothing from the shutdown checkpoint's psql (issue 13.6).

The checkpoint runs while the embedded server is being stopped; psql then reports "FATAL:
terminating connection due to administrator command" on the terminal it inherited, which read
like a crash. Its output is discarded, and it still checkpoints a running server.
"""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from festmon_tui.db.embedded import checkpoint_quietly
from tests.support import PgServer


def _gone_server_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"


def test_a_checkpoint_against_a_server_that_is_going_away_writes_nothing_to_the_terminal(
    capfd: pytest.CaptureFixture[str],
) -> None:
    checkpoint_quietly(_gone_server_uri())
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


async def test_the_quiet_checkpoint_still_checkpoints_a_running_server(
    pg_server: PgServer, capfd: pytest.CaptureFixture[str]
) -> None:
    conn = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        query = "SELECT num_requested FROM pg_stat_checkpointer"
        before = await conn.fetchval(query)
        await asyncio.to_thread(checkpoint_quietly, pg_server.dsn("postgres"))
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        assert await conn.fetchval(query) > before
    finally:
        await conn.close()
    assert capfd.readouterr() == ("", "")
