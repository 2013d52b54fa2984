"""Small CLI defects of issue 13.6, each with the test that failed before its fix."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import Verb
from festmon_tui.service.api import ActionRefused
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from tests.reliability.cli import environment, run
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database
from tests.reliability.test_hostile_input import failed_payment

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as `yes | head -1` ends


def _to_a_reader_that_left(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """festmon writing into a pipe whose reader has already gone (`... | head -2` after 2 lines).

    The read end is closed before festmon starts, so its first write fails: deterministic."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "festmon_tui", *args],
            cwd=cwd,
            env=environment(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


async def test_output_to_a_pipe_whose_reader_left_ends_quietly(
    rel_db: Database, tmp_path: Path
) -> None:
    conn = await rel_db.admin()
    try:
        await failed_payment(conn, "card-1", {"note": "x"})
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()
    for command in (
        ["events", "--format", "json"],
        ["events", "--format", "csv"],
        ["events"],
        ["cycle"],
        ["cycle", "--json"],
        ["status", "--json"],
    ):
        result = await asyncio.to_thread(
            _to_a_reader_that_left, *command, "--database-url", dsn, cwd=tmp_path
        )
        assert result.returncode == EXIT_BROKEN_PIPE, (command, result.returncode, result.stderr)
        assert result.stderr == "", (command, result.stderr)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cycle_json_against_an_unreachable_database_prints_a_json_error_document(
    tmp_path: Path,
) -> None:
    dsn = f"postgresql://u:secret@127.0.0.1:{_free_port()}/db?connect_timeout=1"
    result = await run("--env-file", "/dev/null", "cycle", "--json", "--database-url", dsn,
                       cwd=tmp_path)  # fmt: skip
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["success"] is False and document["exit_code"] == 3
    assert document["error"].startswith("database unreachable: ")
    assert "secret" not in result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "unreachable: database unreachable" not in result.stderr


async def test_an_action_while_the_database_is_away_names_the_outage_once(
    rel_db: Database, proxy: FaultProxy
) -> None:
    event_id = await _an_event(rel_db)
    dsn = rel_db.tcp_dsn(port=proxy.port)
    settings = load_settings(
        {"database_url": dsn, "monitoring_operator": "ops", "monitoring_connect_timeout_ms": 1000},
        env_file=None,
    )
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), run_scheduler=False, listen=False
    )
    await service.start()
    try:
        assert await service.wait_connected(10)
        proxy.drop()
        with pytest.raises(ActionRefused) as refused:
            await service.act(event_id, Verb.ACKNOWLEDGE, None)
    finally:
        await service.stop()
    message = str(refused.value)
    assert "unavailable" in message, message
    assert "unavailable: database unavailable" not in message, message


async def _an_event(db: Database) -> int:
    conn = await db.admin()
    try:
        event_id: int = await conn.fetchval(
            "SELECT create_monitoring_event('balance_discrepancy', 'HIGH',"
            " 'balance_mismatch_detection', 'card-1', NULL, 1.00)"
        )
    finally:
        await conn.close()
    return event_id
