"""update_system_health_snapshot(): what is measured and how the overall status is decided."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

ACTOR = json.dumps({"os_user": "alice"})


async def _now(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT now()")


async def _snapshot(conn: asyncpg.Connection) -> asyncpg.Record:
    snapshot_id = await conn.fetchval("SELECT update_system_health_snapshot()")
    return await conn.fetchrow(
        "SELECT * FROM system_health_snapshots WHERE snapshot_id = $1", snapshot_id
    )


async def _transactions(conn: asyncpg.Connection, completed: int, failed: int) -> None:
    now = await _now(conn)
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, "timestamp")
        SELECT 'C' || g, 'bar_order', CASE WHEN g <= $2::int THEN 'failed' ELSE 'completed' END,
               $3::timestamptz - g * interval '10 seconds'
          FROM generate_series(1, $1::int + $2::int) AS g
        """,
        completed,
        failed,
        now,
    )


async def test_an_idle_festival_is_healthy_with_no_success_rate(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await conn.execute(
        'INSERT INTO app_transaction_log (card_id, transaction_type, status, "timestamp")'
        " VALUES ('C1', 'bar_order', 'failed', $1)",
        now - timedelta(hours=3),
    )

    snapshot = await _snapshot(conn)

    assert snapshot["overall_health_status"] == "HEALTHY"
    assert snapshot["total_transactions_last_hour"] == 0
    assert snapshot["success_rate_percent"] is None
    assert snapshot["nfc_success_rate_percent"] is None
    assert json.loads(snapshot["status_reasons"]) == []


async def test_a_resolved_critical_event_does_not_make_the_system_critical(
    conn: asyncpg.Connection,
) -> None:
    event_id = await conn.fetchval(
        "SELECT create_monitoring_event('transaction_failure', 'CRITICAL', 'manual_check', 'C1')"
    )
    assert (await _snapshot(conn))["overall_health_status"] == "CRITICAL"

    await conn.execute("SELECT resolve_monitoring_event($1, $2::jsonb, 'fixed')", event_id, ACTOR)
    snapshot = await _snapshot(conn)

    assert snapshot["overall_health_status"] == "HEALTHY"
    assert snapshot["critical_events_last_hour"] == 1
    assert snapshot["active_critical_events"] == 0


async def test_an_active_high_event_is_a_warning_with_its_reason(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "SELECT create_monitoring_event('balance_discrepancy', 'HIGH', 'manual_check', 'C1')"
    )
    await conn.execute(
        "SELECT create_monitoring_event('duplicate_nfc', 'MEDIUM', 'manual_check', 'C2')"
    )

    snapshot = await _snapshot(conn)

    assert snapshot["overall_health_status"] == "WARNING"
    assert json.loads(snapshot["status_reasons"]) == ["1 active HIGH event(s)"]
    # INFO initialization event + HIGH + MEDIUM
    assert snapshot["active_events_count"] == 3


async def test_a_success_rate_below_99_percent_is_a_warning(conn: asyncpg.Connection) -> None:
    await _transactions(conn, completed=98, failed=2)

    snapshot = await _snapshot(conn)

    assert snapshot["success_rate_percent"] == Decimal("98.00")
    assert (
        snapshot["successful_transactions_last_hour"],
        snapshot["failed_transactions_last_hour"],
    ) == (
        98,
        2,
    )
    assert snapshot["overall_health_status"] == "WARNING"


async def test_a_success_rate_of_99_percent_is_healthy(conn: asyncpg.Connection) -> None:
    await _transactions(conn, completed=99, failed=1)

    snapshot = await _snapshot(conn)

    assert snapshot["success_rate_percent"] == Decimal("99.00")
    assert snapshot["overall_health_status"] == "HEALTHY"


async def test_nfc_health_comes_from_scan_status_and_processing_times(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await conn.execute(
        """
        INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status,
                                  processing_duration_ms)
        SELECT 'C' || g, $1::timestamptz - g * interval '1 second',
               CASE WHEN g <= 2 THEN 'duplicate' WHEN g = 3 THEN 'timeout' ELSE 'success' END,
               g * 10
          FROM generate_series(1, 100) AS g
        """,
        now,
    )

    snapshot = await _snapshot(conn)

    assert snapshot["total_nfc_scans_last_hour"] == 100
    assert snapshot["duplicate_nfc_scans_last_hour"] == 2
    # 97 successes out of 98 measured scans (the debouncer's duplicates are not failures)
    assert snapshot["nfc_success_rate_percent"] == Decimal("98.98")
    assert snapshot["overall_health_status"] == "WARNING"
    assert (snapshot["avg_processing_time_ms"], snapshot["max_processing_time_ms"]) == (505, 1000)
    assert snapshot["p95_processing_time_ms"] == 951


async def test_money_and_cards_are_measured(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO table_cards (id, amount) VALUES ('A', 10.50), ('B', 0), ('C', -1.25)"
    )

    snapshot = await _snapshot(conn)

    assert snapshot["active_cards_count"] == 1
    assert snapshot["total_system_balance"] == Decimal("9.25")
    metrics = json.loads(snapshot["metrics_data"])
    assert 0 <= metrics["snapshot_generation_time_ms"] < 60_000
    assert metrics["payment_tables_present"] == {
        "table_cards": True,
        "app_transaction_log": True,
        "nfc_scan_log": True,
    }


async def test_a_cycle_reports_its_real_duration_and_the_snapshot_it_took(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "INSERT INTO table_cards (id, amount) SELECT 'X' || g, 1 FROM generate_series(1, 5000) g"
    )
    transaction = conn.transaction()
    await transaction.start()
    try:
        cycle = json.loads(await conn.fetchval("SELECT run_monitoring_detection_cycle()"))
    finally:
        await transaction.commit()

    assert set(cycle) >= {
        "cycle_timestamp",
        "cycle_duration_seconds",
        "total_events_created",
        "health_snapshot_id",
        "detection_results",
        "success",
    }
    assert set(cycle["detection_results"]) == {
        "transaction_failures",
        "balance_discrepancies",
        "duplicate_nfc_scans",
        "race_conditions",
    }
    assert cycle["cycle_duration_seconds"] > 0  # clock time, even inside one transaction
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM system_health_snapshots WHERE snapshot_id = $1",
            cycle["health_snapshot_id"],
        )
        == 1
    )
