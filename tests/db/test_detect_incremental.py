"""Exactly once and nothing missed: watermarks, late commits, catch-up, concurrency, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.db.payment_rows import db_now, log_row, scan_row

CYCLE = "SELECT run_monitoring_detection_cycle()"


@asynccontextmanager
async def _connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _cycle(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(await conn.fetchval(CYCLE))


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT detection_algorithm, count(*) AS n FROM monitoring_events"
        " WHERE detection_algorithm <> 'system_initialization' GROUP BY 1"
    )
    return {r["detection_algorithm"]: r["n"] for r in rows}


async def _anomalies(conn: asyncpg.Connection, at: datetime, tag: str) -> None:
    """One case for every rule, on cards named after tag."""
    await conn.execute(
        "INSERT INTO table_cards (id, amount) VALUES ($1, 41.00), ($2, -1.00)",
        f"{tag}-mismatch",
        f"{tag}-negative",
    )
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'stripe_recharge', 'completed', 40.00, 0.00, 40.00, $2)
        """,
        f"{tag}-mismatch",
        at - timedelta(minutes=5),
    )
    await log_row(conn, f"{tag}-deducted", status="failed", at=at, previous="20.00", new="15.00")
    for minute in (1, 2, 3):
        await log_row(conn, f"{tag}-failing", status="failed", at=at + timedelta(minutes=minute))
    await log_row(conn, f"{tag}-racing", status="completed", at=at, request="r1")
    await log_row(
        conn, f"{tag}-racing", status="completed", at=at + timedelta(milliseconds=400), request="r2"
    )
    await scan_row(conn, f"{tag}-scanned", at)
    await scan_row(conn, f"{tag}-scanned", at + timedelta(seconds=1))


EXPECTED_PER_TAG = {
    "balance_deduction_on_failure": 1,
    "consecutive_failures": 1,
    "balance_mismatch_detection": 1,
    "negative_balance_detection": 1,
    "concurrent_transaction_detection": 1,
    "temporal_duplicate_detection": 1,
}


async def test_a_cycle_with_no_new_rows_creates_nothing_and_counts_no_new_occurrence(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await _anomalies(conn, now - timedelta(minutes=20), "a")
    first = await _cycle(conn)

    second = await _cycle(conn)

    assert first["success"] and second["success"]
    assert first["total_events_created"] == sum(EXPECTED_PER_TAG.values())
    assert second["total_events_created"] == 0
    # Only the two balance sweeps see their (still present) problems again.
    assert second["total_events_updated"] == 2
    assert await _counts(conn) == EXPECTED_PER_TAG
    occurrences = dict(
        await conn.fetch(
            "SELECT detection_algorithm, occurrence_count FROM monitoring_events"
            " WHERE detection_algorithm <> 'system_initialization'"
        )
    )
    assert occurrences == {
        **dict.fromkeys(EXPECTED_PER_TAG, 1),
        "balance_mismatch_detection": 2,
        "negative_balance_detection": 2,
    }


async def test_two_cycles_started_at_once_from_two_connections_create_no_duplicate(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    now = await db_now(conn)
    for i in range(5):
        await _anomalies(conn, now - timedelta(minutes=30 - i), f"t{i}")

    async with _connection(db_dsn) as one, _connection(db_dsn) as two:
        results = []
        for _ in range(3):
            results += await asyncio.gather(_cycle(one), _cycle(two))

    assert all(r["success"] for r in results), [r["errors"] for r in results]
    # 20 failed rows out of 35 within a quarter of an hour are also one failure spike.
    expected = {**{k: 5 * v for k, v in EXPECTED_PER_TAG.items()}, "system_failure_spike": 1}
    assert sum(r["total_events_created"] for r in results) == sum(expected.values())
    assert await _counts(conn) == expected
    # Incremental rules examined every row once: no repeat was counted.
    assert (
        await conn.fetchval(
            "SELECT max(occurrence_count) FROM monitoring_events WHERE detection_algorithm"
            " IN ('balance_deduction_on_failure', 'consecutive_failures',"
            "     'concurrent_transaction_detection', 'temporal_duplicate_detection')"
        )
        == 1
    )


async def _wait_until_blocked(conn: asyncpg.Connection, pid: int) -> None:
    for _ in range(10_000):
        waiting = await conn.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_the_same_problem_written_by_two_transactions_at_once_is_one_event(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    create = "SELECT create_monitoring_event('race_condition', 'MEDIUM', 'manual_check', 'C9')"
    async with _connection(db_dsn) as one, _connection(db_dsn) as two:
        transaction = one.transaction()
        await transaction.start()
        first_id = await one.fetchval(create)
        second = asyncio.create_task(two.fetchval(create))
        await _wait_until_blocked(conn, two.get_server_pid())
        await transaction.commit()
        second_id = await second

    assert first_id == second_id
    assert (
        await conn.fetchval(
            "SELECT occurrence_count FROM monitoring_events WHERE event_id = $1", first_id
        )
        == 2
    )


async def test_a_row_committed_late_with_a_lower_id_is_still_examined(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    now = await db_now(conn)
    async with _connection(db_dsn) as slow:
        transaction = slow.transaction()
        await transaction.start()
        late_id = await log_row(
            slow, "LATE", status="failed", at=now, previous="30.00", new="20.00"
        )
        committed_id = await log_row(
            conn, "OTHER", status="completed", at=now, previous="5.00", new="0.00"
        )
        assert late_id < committed_id

        before = await _cycle(conn)
        await _cycle(conn)
        assert before["success"]
        assert "balance_deduction_on_failure" not in await _counts(conn)

        await transaction.commit()

    after = await _cycle(conn)

    rule = after["detection_results"]["transaction_failures"]["rules"][
        "balance_deduction_on_failure"
    ]
    assert rule["late_rows"] == 1
    event = await conn.fetchrow(
        "SELECT * FROM monitoring_events WHERE detection_algorithm = 'balance_deduction_on_failure'"
    )
    assert event["card_id"] == "LATE"
    assert json.loads(event["event_data"])["log_id"] == late_id


async def test_an_hour_of_monitor_downtime_is_caught_up_in_one_cycle(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await _cycle(conn)  # the monitor ran, then went down for an hour
    await _anomalies(conn, now - timedelta(minutes=58), "early")
    await _anomalies(conn, now - timedelta(minutes=30), "middle")
    spike_start = now - timedelta(minutes=45)
    for i in range(12):
        await log_row(
            conn,
            f"spike-{i}",
            status="failed" if i % 4 == 0 else "completed",
            at=spike_start + timedelta(seconds=10 * i),
        )

    result = await _cycle(conn)

    assert result["success"]
    counts = await _counts(conn)
    assert counts == {**{k: 2 * v for k, v in EXPECTED_PER_TAG.items()}, "system_failure_spike": 1}


async def test_a_backlog_larger_than_the_batch_size_is_caught_up_over_several_runs(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 10")
    now = await db_now(conn)
    for i in range(25):
        await log_row(
            conn,
            f"C{i}",
            status="failed",
            at=now - timedelta(minutes=30 - i),
            previous="9",
            new="4",
        )

    runs = []
    for _ in range(5):
        runs.append(json.loads(await conn.fetchval("SELECT run_critical_detection()")))
        if not runs[-1]["backlog"]:
            break

    assert [r["rules"]["balance_deduction_on_failure"]["rows_examined"] for r in runs] == [
        10,
        10,
        5,
    ]
    assert [r["backlog"] for r in runs] == [True, True, False]
    assert (await _counts(conn))["balance_deduction_on_failure"] == 25


async def test_the_first_run_starts_at_the_initial_lookback(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await log_row(
        conn, "ANCIENT", status="failed", at=now - timedelta(days=2), previous="9", new="4"
    )
    await log_row(
        conn, "RECENT", status="failed", at=now - timedelta(hours=2), previous="9", new="4"
    )

    await _cycle(conn)

    cards = await conn.fetch(
        "SELECT card_id FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_deduction_on_failure'"
    )
    assert [r["card_id"] for r in cards] == ["RECENT"]


async def test_a_failing_rule_is_reported_while_the_other_rules_still_run(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await _anomalies(conn, now - timedelta(minutes=10), "f")
    await conn.execute("REVOKE SELECT ON nfc_scan_log FROM monitoring_writer")
    await conn.execute("SET ROLE monitoring_writer")

    broken = await _cycle(conn)

    nfc = broken["detection_results"]["duplicate_nfc_scans"]
    assert broken["success"] is False
    assert nfc["success"] is False
    assert "permission denied" in nfc["rules"]["temporal_duplicate_detection"]["error"]
    # The health snapshot reads nfc_scan_log too, and says so.
    assert [(e["detector"], e["algorithm"]) for e in broken["errors"]] == [
        ("duplicate_nfc_scans", "temporal_duplicate_detection"),
        ("health_snapshot", None),
    ]
    assert broken["health_snapshot_id"] is None
    assert broken["detection_results"]["race_conditions"]["success"] is True
    expected_without_nfc = {
        k: v for k, v in EXPECTED_PER_TAG.items() if k != "temporal_duplicate_detection"
    }
    assert await _counts(conn) == expected_without_nfc

    await conn.execute("RESET ROLE")
    await conn.execute("GRANT SELECT ON nfc_scan_log TO monitoring_writer")
    repaired = await _cycle(conn)

    assert repaired["success"] is True
    assert await _counts(conn) == EXPECTED_PER_TAG


async def test_a_rule_blocked_by_a_lock_fails_fast_and_is_reported(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("UPDATE monitoring_settings SET rule_lock_timeout = '100 milliseconds'")
    async with _connection(db_dsn) as dba:
        transaction = dba.transaction()
        await transaction.start()
        await dba.execute("LOCK TABLE nfc_scan_log IN ACCESS EXCLUSIVE MODE")
        try:
            result = json.loads(await conn.fetchval("SELECT detect_duplicate_nfc_scans()"))
        finally:
            await transaction.rollback()

    assert result["success"] is False
    assert result["rules"]["temporal_duplicate_detection"]["error_sqlstate"] == "55P03"


async def test_a_statement_timeout_aborts_the_whole_call(conn: asyncpg.Connection) -> None:
    # Cancellation is not swallowed by the per-rule error handling: the caller's timeout wins.
    await conn.execute(
        "INSERT INTO table_cards (id, amount) SELECT 'X' || g, 1 FROM generate_series(1, 20000) g"
    )
    await conn.execute("SET statement_timeout = '1ms'")
    with pytest.raises(asyncpg.QueryCanceledError):
        await conn.fetchval(CYCLE)
    await conn.execute("RESET statement_timeout")


async def test_the_scheduler_jobs_report_every_rule_they_ran(conn: asyncpg.Connection) -> None:
    critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    medium = json.loads(await conn.fetchval("SELECT run_medium_detection()"))

    assert critical["job"] == "critical"
    assert set(critical["rules"]) == {
        "balance_deduction_on_failure",
        "consecutive_failures",
        "system_failure_spike",  # issue 19.5: time to detect
        "balance_mismatch_detection",
        "negative_balance_detection",
        "balance_chain_break",
        "temporal_duplicate_detection",
        "concurrent_transaction_detection",
    }
    assert medium["job"] == "medium"
    # No balance_chain_break in the medium job: the critical rules claim in lockstep (issue 19)
    assert set(medium["rules"]) == {
        "system_failure_spike",
        "balance_mismatch_detection",
        "negative_balance_detection",
    }
    assert medium["rules"]["balance_mismatch_detection"]["mode"] == "sweep"
    assert medium["views"]["success"] is True
    assert medium["alerts"]["success"] is True
    for job in (critical, medium):
        assert job["success"] is True
        assert job["errors"] == []
        assert job["duration_seconds"] >= 0


async def test_a_payment_committed_late_is_folded_into_the_card_ledger(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    # A recharge whose transaction stays open while other payments commit and sweeps run.
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('SLOW', 0), ('FAST', 0)")
    await conn.execute("SELECT run_medium_detection()")
    async with _connection(db_dsn) as slow:
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute(
            "SELECT sp_process_recharge('SLOW', 20.00, 'standard_recharge', 'slow-1')"
        )
        await conn.execute(
            "SELECT sp_process_recharge('FAST', 5.00, 'standard_recharge', 'fast-1')"
        )
        for _ in range(2):
            assert json.loads(await conn.fetchval("SELECT run_medium_detection()"))["success"]
        await transaction.commit()

    critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    medium = json.loads(await conn.fetchval("SELECT run_medium_detection()"))

    # The fold (where the late row shows) is the medium job's (issue 19).
    assert critical["success"] is True
    assert medium["rules"]["balance_mismatch_detection"]["late_rows"] == 1
    assert medium["success"] is True
    assert "balance_mismatch_detection" not in await _counts(conn)
    assert (
        await conn.fetchval(
            "SELECT last_balance FROM monitoring_card_ledger WHERE card_id = 'SLOW'"
        )
        == 20
    )
