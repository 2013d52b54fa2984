"""Upgrading the original's database in place keeps its history as it was (issue 13.5): event
times are not rewritten to the migration time, the original's acknowledgements are carried
over, conflicting objects are named with the fix, and a database without payment tables warns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.migrations import MigrationError, migrate
from tests.db.test_cli_ops import run
from tests.db.test_monitoring_schema import ORIGINAL_PHASE4

JULY = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

# A season's history the way the original left it: times of its own, and an event an operator
# acknowledged the original way (alert_history.acknowledged_by/at, event INVESTIGATING).
SEASON = """
ALTER TABLE monitoring_events DISABLE TRIGGER trigger_monitoring_events_updated_at;
UPDATE monitoring_events
   SET detection_timestamp = $1::timestamptz - event_id * interval '1 hour',
       created_at = $1::timestamptz - event_id * interval '1 hour',
       updated_at = $1::timestamptz + event_id * interval '1 minute';
ALTER TABLE monitoring_events ENABLE TRIGGER trigger_monitoring_events_updated_at;
"""


@pytest.fixture
async def original(empty_db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await conn.execute(ORIGINAL_PHASE4)
        yield conn
    finally:
        await conn.close()


async def _acknowledged_the_original_way(conn: asyncpg.Connection) -> int:
    event_id: int = await conn.fetchval(
        """
        INSERT INTO monitoring_events (event_type, severity, detection_algorithm, card_id,
                                       event_data, status)
        VALUES ('balance_discrepancy', 'CRITICAL', 'balance_mismatch_detection', 'ACK-1', '{}',
                'INVESTIGATING')
        RETURNING event_id
        """
    )
    await conn.execute(
        "UPDATE alert_history SET acknowledged_by = 'maria', acknowledged_at = $2"
        " WHERE monitoring_event_id = $1",
        event_id,
        JULY,
    )
    return event_id


async def test_upgrade_keeps_event_times_and_carries_the_original_acknowledgements(
    original: asyncpg.Connection,
) -> None:
    acknowledged = await _acknowledged_the_original_way(original)
    await original.execute(SEASON.replace("$1", f"'{JULY.isoformat()}'"))
    before = {
        r["event_id"]: r
        for r in await original.fetch(
            "SELECT event_id, detection_timestamp, updated_at FROM monitoring_events"
        )
    }

    await migrate(original, with_payment_schema=True)

    after = await original.fetch(
        "SELECT event_id, detection_timestamp, updated_at, last_seen_at, acknowledged_by,"
        " acknowledged_at, status FROM monitoring_events WHERE event_id = ANY($1::bigint[])",
        list(before),
    )
    assert len(after) == len(before)
    for row in after:
        old = before[row["event_id"]]
        assert row["updated_at"] == old["updated_at"], row["event_id"]
        assert row["last_seen_at"] == old["detection_timestamp"], row["event_id"]
    by_id = {r["event_id"]: r for r in after}
    assert by_id[acknowledged]["status"] == "INVESTIGATING"
    assert (by_id[acknowledged]["acknowledged_by"], by_id[acknowledged]["acknowledged_at"]) == (
        "maria",
        JULY,
    )
    assert {r["acknowledged_by"] for r in after if r["event_id"] != acknowledged} == {None}
    history = await original.fetch(
        "SELECT event_id, action, from_status, to_status, actor_operator, actor ->> 'source',"
        " acted_at FROM monitoring_event_actions"
    )
    assert [tuple(r) for r in history] == [
        (acknowledged, "acknowledge", "OPEN", "INVESTIGATING", "maria",
         "original system (alert_history)", JULY)
    ]  # fmt: skip


async def test_a_conflicting_function_is_named_with_what_to_do(
    original: asyncpg.Connection,
) -> None:
    # A site-specific function of the original's era under one of festmon's names.
    await original.execute("DROP FUNCTION refresh_monitoring_views()")
    await original.execute(
        "CREATE FUNCTION refresh_monitoring_views() RETURNS void LANGUAGE sql AS $$ SELECT $$"
    )

    with pytest.raises(MigrationError) as caught:
        await migrate(original, with_payment_schema=True)

    message = str(caught.value)
    assert "function refresh_monitoring_views()" in message
    assert "cannot change return type of existing function" in message
    assert "DROP FUNCTION refresh_monitoring_views()" in message
    assert "festmon db migrate" in message


async def test_migrate_without_payment_tables_warns_and_says_what_to_do(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    result = await run("db", "migrate", dsn=empty_db_dsn, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "migration(s) applied" in result.stdout
    warning = result.stderr.strip()
    assert warning.startswith("festmon: warning: payment tables missing:")
    assert "app_transaction_log" in warning and "nfc_scan_log" in warning
    assert "table_cards" in warning
    assert "--with-payment-schema" in warning


async def test_a_conflicting_table_is_named_with_what_to_do(
    original: asyncpg.Connection,
) -> None:
    # A table of the original's era under one of festmon's names, with another shape.
    await original.execute("CREATE TABLE monitoring_cycle_runs (kind text, started text)")

    with pytest.raises(MigrationError) as caught:
        await migrate(original, with_payment_schema=True)

    message = str(caught.value)
    assert message.startswith("migrations/monitoring/V0001__monitoring_schema.sql line ")
    assert 'column "finished_at" does not exist' in message
    assert "table monitoring_cycle_runs exists with a shape festmon does not expect" in message
    assert "festmon db migrate again" in message
    # Nothing was applied: the original's tables are as they were.
    assert await original.fetchval("SELECT to_regclass('festmon_schema_migrations')") is None


async def test_a_database_upgraded_by_an_earlier_festmon_gets_its_last_seen_times_back(
    original: asyncpg.Connection,
) -> None:
    await original.execute(SEASON.replace("$1", f"'{JULY.isoformat()}'"))
    await migrate(original, with_payment_schema=True)
    # What an earlier festmon left: every original event "last seen" at V0001's transaction
    # time, and no V0014 yet.
    applied_at = await original.fetchval(
        "SELECT applied_at FROM festmon_schema_migrations"
        " WHERE filename = 'V0001__monitoring_schema.sql'"
    )
    await original.execute(
        "UPDATE monitoring_events SET last_seen_at = $1 WHERE detection_timestamp < $1",
        applied_at,
    )
    await original.execute(
        "DELETE FROM festmon_schema_migrations"
        " WHERE filename = 'V0014__upgrade_keeps_original_history.sql'"
    )
    updated = dict(await original.fetch("SELECT event_id, updated_at FROM monitoring_events"))

    await migrate(original, with_payment_schema=True)

    rows = await original.fetch(
        "SELECT event_id, detection_timestamp, last_seen_at, updated_at FROM monitoring_events"
        " WHERE detection_timestamp < $1",
        applied_at,
    )
    assert rows
    assert all(r["last_seen_at"] == r["detection_timestamp"] for r in rows)
    assert all(r["updated_at"] == updated[r["event_id"]] for r in rows)
