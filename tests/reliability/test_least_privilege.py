"""Least privilege, enforced by the database: a reader changes nothing, a writer no payment."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import Verb
from festmon_tui.service.api import ActionRefused
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from tests.reliability.cli import assert_clean_failure, environment, run
from tests.reliability.server import Database

READER_PASSWORD = "Pw-Reader-3b7e1f"
WRITER_PASSWORD = "Pw-Writer-9c2d4a"
PAYMENT_TABLES = (
    "table_cards",
    "app_transaction_log",
    "nfc_scan_log",
    "bar_orders",
    "bar_order_items",
    "recharges",
    "idempotency_keys",
)
_suffix = itertools.count()


@dataclass(frozen=True)
class Logins:
    """A reader and a writer login on one test database."""

    reader: str
    writer: str
    reader_dsn: str
    writer_dsn: str


async def _create_login(admin: asyncpg.Connection, name: str, group: str, password: str) -> None:
    statement = await admin.fetchval(
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I',"
        " $1::text, $2::text, $3::text)",
        name,
        password,
        group,
    )
    await admin.execute(statement)


@pytest.fixture
async def logins(rel_db: Database) -> AsyncIterator[Logins]:
    tag = f"{os.getpid()}_{next(_suffix)}"
    reader, writer = f"rel_reader_{tag}", f"rel_writer_{tag}"
    admin = await rel_db.admin()
    try:
        await _create_login(admin, reader, "monitoring_reader", READER_PASSWORD)
        await _create_login(admin, writer, "monitoring_writer", WRITER_PASSWORD)
        yield Logins(
            reader,
            writer,
            rel_db.tcp_dsn(user=reader, password=READER_PASSWORD),
            rel_db.tcp_dsn(user=writer, password=WRITER_PASSWORD),
        )
    finally:
        await admin.execute(f"REVOKE ALL ON DATABASE {rel_db.name} FROM {reader}, {writer}")
        for role in (reader, writer):
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def critical_event(rel_db: Database) -> int:
    admin = await rel_db.admin()
    try:
        event_id: int = await admin.fetchval(
            "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'test_rule',"
            " 'card-1', NULL, 12.50, 1.0, '{}', '{}')"
        )
        return event_id
    finally:
        await admin.close()


ACTOR = '{"os_user": "mallory"}'

# What a reader must never do, each refused by the database itself.
READER_REFUSED = [
    f"SELECT acknowledge_monitoring_event({{id}}, '{ACTOR}', NULL)",
    f"SELECT resolve_monitoring_event({{id}}, '{ACTOR}', 'fixed')",
    f"SELECT mark_monitoring_event_false_positive({{id}}, '{ACTOR}', 'nothing')",
    f"SELECT unacknowledge_monitoring_event({{id}}, '{ACTOR}', NULL)",
    "SELECT run_monitoring_detection_cycle()",
    "SELECT run_critical_detection()",
    "SELECT run_medium_detection()",
    "SELECT detect_transaction_failures()",
    "SELECT update_system_health_snapshot()",
    "SELECT refresh_monitoring_views()",
    "SELECT cleanup_monitoring_data(0)",
    "SELECT create_monitoring_event('duplicate_nfc', 'LOW', 'forged', 'card-1')",
    "SELECT claim_monitoring_cycle_run('manual', 'x', interval '1 minute', 'mallory', 1)",
    "UPDATE monitoring_events SET status = 'RESOLVED' WHERE event_id = {id}",
    "DELETE FROM monitoring_events WHERE event_id = {id}",
    "INSERT INTO monitoring_events (event_type, severity, detection_algorithm)"
    " VALUES ('duplicate_nfc', 'LOW', 'forged')",
    "UPDATE monitoring_scheduler_lease SET holder_id = 'mallory'",
    "UPDATE monitoring_settings SET discrepancy_threshold = 1000000",
    "DELETE FROM monitoring_event_actions",
    "TRUNCATE monitoring_events",
]


@pytest.mark.parametrize("statement", READER_REFUSED)
async def test_the_database_refuses_every_change_by_a_reader(
    rel_db: Database, logins: Logins, statement: str
) -> None:
    event_id = await critical_event(rel_db)
    reader = await asyncpg.connect(logins.reader_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute(statement.replace("{id}", str(event_id)))
        # What the dashboard reads is readable.
        assert await reader.fetchval("SELECT count(*) FROM monitoring_events") >= 1
        assert await reader.fetchval("SELECT count(*) FROM table_cards") == 0
    finally:
        await reader.close()


async def test_no_festmon_table_or_definer_function_gives_a_reader_any_write(
    rel_db: Database, logins: Logins
) -> None:
    admin = await rel_db.admin()
    try:
        writable = await admin.fetch(
            """
            SELECT c.relname FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm', 'S')
              AND (has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                   OR (c.relkind = 'S' AND has_sequence_privilege($1, c.oid, 'USAGE, UPDATE')))
            """,
            logins.reader,
        )
        assert [r["relname"] for r in writable] == []
        # A SECURITY DEFINER function runs as its owner: a reader may execute none of them,
        # and each pins its search_path so a caller's objects cannot hijack it.
        definers = await admin.fetch(
            """
            SELECT p.oid::regprocedure::text AS name,
                   has_function_privilege($1, p.oid, 'EXECUTE') AS reader_may,
                   coalesce(array_to_string(p.proconfig, ','), '') LIKE '%search_path=%' AS pinned
            FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
            """,
            logins.reader,
        )
        assert definers, "expected festmon's refresh and cleanup to be SECURITY DEFINER"
        assert [d["name"] for d in definers if d["reader_may"]] == []
        assert [d["name"] for d in definers if not d["pinned"]] == []
    finally:
        await admin.close()


async def test_a_writer_runs_detection_but_cannot_touch_a_payment_table(
    rel_db: Database, logins: Logins, tmp_path: Path
) -> None:
    admin = await rel_db.admin()
    try:
        first_column = {
            r["table_name"]: r["column_name"]
            for r in await admin.fetch(
                "SELECT table_name::text, column_name::text FROM information_schema.columns"
                " WHERE table_schema = 'public' AND ordinal_position = 2"
                " AND table_name = ANY($1::text[])",
                list(PAYMENT_TABLES),
            )
        }
    finally:
        await admin.close()
    assert set(first_column) == set(PAYMENT_TABLES)
    writer = await asyncpg.connect(logins.writer_dsn)
    try:
        for table in PAYMENT_TABLES:
            column = first_column[table]
            for statement in (
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
                f"UPDATE {table} SET {column} = {column}",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await writer.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.execute("INSERT INTO table_cards (id, amount) VALUES ('forged', 1000)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.execute(
                "INSERT INTO app_transaction_log (card_id, transaction_type, status)"
                " VALUES ('forged', 'manual_correction', 'completed')"
            )
        # The payment procedures run with the caller's rights: no money moves for a writer.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.fetchval(
                "SELECT sp_process_recharge('card-1', 100, 'standard_recharge', 'w-1')"
            )
        # What the scheduler needs, the writer has.
        doc = json.loads(await writer.fetchval("SELECT run_monitoring_detection_cycle()"))
        assert doc["success"] is True, doc["errors"]
    finally:
        await writer.close()
    cycle = await run("cycle", "--database-url", logins.writer_dsn, cwd=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    ack = await run("ack", str(await critical_event(rel_db)), "--database-url", logins.writer_dsn,
                    cwd=tmp_path)  # fmt: skip
    assert ack.returncode == 0, ack.stderr


async def test_a_service_logged_in_as_a_reader_gets_the_databases_refusal_as_a_reason(
    rel_db: Database, logins: Logins
) -> None:
    event_id = await critical_event(rel_db)
    settings = load_settings({"database_url": logins.reader_dsn}, env_file=None)
    # Not --viewer: the refusal must come from the database, not from festmon hiding a key.
    service = PostgresMonitorService(
        settings,
        ConnectOptions.from_settings(settings, logins.reader_dsn),
        run_scheduler=False,
        listen=False,
    )
    await service.start()
    try:
        assert await service.wait_connected(10)
        for action in (
            service.act(event_id, Verb.ACKNOWLEDGE),
            service.act(event_id, Verb.RESOLVE, "fixed"),
            service.act(event_id, Verb.FALSE_POSITIVE, "nothing"),
            service.run_cycle_now(),
        ):
            with pytest.raises(ActionRefused, match="permission denied"):
                await action
        detail = await service.event_detail(event_id)
        assert detail.event.status == "OPEN"
    finally:
        await service.stop()


async def test_lifecycle_commands_as_a_reader_exit_non_zero_with_the_reason(
    rel_db: Database, logins: Logins, tmp_path: Path
) -> None:
    event_id = str(await critical_event(rel_db))
    for cmd in (
        ("ack", event_id),
        ("unack", event_id),
        ("resolve", event_id, "--note", "fixed"),
        ("false-positive", event_id, "--note", "nothing"),
        ("cycle",),
    ):
        result = await run(*cmd, "--database-url", logins.reader_dsn, cwd=tmp_path)
        message = assert_clean_failure(result, code=1)
        assert "permission denied" in message, (cmd, message)
    for cmd in (("events",), ("status",)):
        result = await run(*cmd, "--database-url", logins.reader_dsn, cwd=tmp_path)
        assert result.returncode == 0, (cmd, result.stderr)


async def test_a_headless_scheduler_with_a_login_that_cannot_lead_says_so(
    logins: Logins, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless",
        "--database-url", logins.reader_dsn, "--monitoring-interval-critical", "500",
        cwd=tmp_path, env=environment(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(15):
            while not any("permission denied" in line and "lease" in line for line in seen):
                line = await process.stderr.readline()
                assert line, f"festmon exited: {''.join(seen)}"
                seen.append(line.decode())
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
    assert READER_PASSWORD not in "".join(seen)
