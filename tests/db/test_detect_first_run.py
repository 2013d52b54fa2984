"""A rule's first run examines every row inside the initial lookback exactly once (issue 13.4).

Ids follow insert order, timestamps need not (device clocks, back-dated imports): the tests
insert rows newest first, so ids run opposite to time, and compare the rules' findings with a
brute-force pass over the same rows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest

from festmon_tui.db.migrations import migrate
from tests.db.test_monitoring_schema import ORIGINAL_PHASE4

LOOKBACK = timedelta(hours=24)
# Rows well inside and well outside the lookback: nothing sits near the boundary.
INSIDE_HOURS = range(1, 23)
OUTSIDE_HOURS = range(26, 48)


@pytest.fixture(params=["fresh install", "upgrade in place"])
async def database(
    request: pytest.FixtureRequest, conn: asyncpg.Connection, empty_db_dsn: str
) -> AsyncIterator[asyncpg.Connection]:
    """A migrated database: festmon's own, or the original's Phase 4 database upgraded."""
    if request.param == "fresh install":
        yield conn
        return
    upgraded = await asyncpg.connect(empty_db_dsn)
    try:
        await upgraded.execute(ORIGINAL_PHASE4)
        await migrate(upgraded, with_payment_schema=True)
        yield upgraded
    finally:
        await upgraded.close()


async def _history_newest_first(conn: asyncpg.Connection, now: datetime) -> None:
    """Failed payments that deducted money, and triple scans 1 s apart, one card each,
    inside and outside the lookback, inserted newest first."""
    hours = sorted([*INSIDE_HOURS, *OUTSIDE_HOURS])
    for hour in hours:
        await conn.execute(
            """
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                             previous_balance, new_balance, "timestamp")
            VALUES ($1, 'bar_order', 'failed', 5.00, 20.00, 15.00, $2)
            """,
            f"D{hour:02d}",
            now - timedelta(hours=hour),
        )
    for hour in hours:
        at = now - timedelta(hours=hour)
        for second in (2, 1, 0):
            await conn.execute(
                "INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp) VALUES ($1, $2)",
                f"S{hour:02d}",
                at + timedelta(seconds=second),
            )


async def _run_until_caught_up(conn: asyncpg.Connection) -> None:
    for _ in range(50):
        cycle = json.loads(await conn.fetchval("SELECT run_monitoring_detection_cycle()"))
        assert cycle["success"] is True, cycle["errors"]
        if not await conn.fetchval("SELECT bool_or(backlog) FROM monitoring_detector_watermarks"):
            return
    raise AssertionError("the rules still report a backlog after 50 cycles")


async def _cards(conn: asyncpg.Connection, algorithm: str) -> set[str]:
    rows = await conn.fetch(
        # (the upgraded database also holds the original's own events: other cards)
        "SELECT card_id FROM monitoring_events WHERE detection_algorithm = $1"
        " AND card_id !~ '^C[0-9]$'",
        algorithm,
    )
    return {r["card_id"] for r in rows}


async def _brute_force_deductions(conn: asyncpg.Connection, cutoff: datetime) -> set[str]:
    rows = await conn.fetch(
        """
        SELECT DISTINCT card_id FROM app_transaction_log
         WHERE "timestamp" >= $1 AND status = 'failed' AND new_balance <> previous_balance
        """,
        cutoff,
    )
    return {r["card_id"] for r in rows}


async def _brute_force_duplicates(conn: asyncpg.Connection, cutoff: datetime) -> set[str]:
    rows = await conn.fetch(
        """
        SELECT DISTINCT card_id_scanned FROM (
            SELECT card_id_scanned, scan_timestamp,
                   lag(scan_timestamp) OVER (PARTITION BY card_id_scanned
                                             ORDER BY scan_timestamp, scan_log_id) AS previous
              FROM nfc_scan_log) AS s
         WHERE scan_timestamp >= $1
           AND scan_timestamp - previous < (SELECT duplicate_nfc_window FROM monitoring_settings)
        """,
        cutoff,
    )
    return {r["card_id_scanned"] for r in rows}


@pytest.mark.parametrize("batch_size", [100000, 7])
async def test_rows_inserted_opposite_to_time_are_each_examined_once_on_the_first_run(
    database: asyncpg.Connection, batch_size: int
) -> None:
    conn = database
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = $1", batch_size)
    now = await conn.fetchval("SELECT now()")
    await _history_newest_first(conn, now)
    cutoff = now - LOOKBACK

    await _run_until_caught_up(conn)

    deductions = await _brute_force_deductions(conn, cutoff)
    duplicates = await _brute_force_duplicates(conn, cutoff)
    assert deductions == {f"D{h:02d}" for h in INSIDE_HOURS}
    assert duplicates == {f"S{h:02d}" for h in INSIDE_HOURS}
    assert await _cards(conn, "balance_deduction_on_failure") == deductions
    assert await _cards(conn, "temporal_duplicate_detection") == duplicates
    # Exactly once: every incremental rule examined the rows inside the lookback, no more.
    examined = dict(
        await conn.fetch(
            "SELECT detector_name, total_examined FROM monitoring_detector_watermarks"
            " WHERE detector_name <> 'card_ledger'"
        )
    )
    log_rows = len(INSIDE_HOURS)
    scan_rows = 3 * len(INSIDE_HOURS)
    assert examined == {
        "balance_chain_break": log_rows,
        "balance_deduction_on_failure": log_rows,
        "concurrent_transaction_detection": log_rows,
        "consecutive_failures": log_rows,
        "system_failure_spike": log_rows,
        "temporal_duplicate_detection": scan_rows,
    }


async def test_after_the_first_run_new_rows_are_followed_whatever_their_timestamp(
    conn: asyncpg.Connection,
) -> None:
    now = await conn.fetchval("SELECT now()")
    await _history_newest_first(conn, now)
    await _run_until_caught_up(conn)

    # A device with a wrong clock uploads a payment dated two days back: a new row is examined.
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ('LATE-CLOCK', 'bar_order', 'failed', 5.00, 20.00, 15.00, $1)
        """,
        now - timedelta(days=2),
    )
    await _run_until_caught_up(conn)

    assert "LATE-CLOCK" in await _cards(conn, "balance_deduction_on_failure")
    examined = await conn.fetchval(
        "SELECT total_examined FROM monitoring_detector_watermarks"
        " WHERE detector_name = 'balance_deduction_on_failure'"
    )
    assert examined == len(INSIDE_HOURS) + 1


async def test_a_row_outside_the_lookback_between_two_inside_still_links_the_balance_chain(
    conn: asyncpg.Connection,
) -> None:
    """The chain break rule compares a row with its real predecessor in id order, even when
    the first run leaves that predecessor out for being older than the lookback."""
    now = await conn.fetchval("SELECT now()")
    chain = [
        ("stripe_recharge", "0.00", "10.00", timedelta(hours=1)),
        ("bar_order", "10.00", "5.00", timedelta(hours=30)),  # outside the lookback
        ("bar_order", "5.00", "0.00", timedelta(minutes=30)),
    ]
    for kind, previous, new, age in chain:
        await conn.execute(
            """
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                             previous_balance, new_balance, "timestamp")
            VALUES ('CHAIN', $1, 'completed', 5.00 + 5.00 * ($1 = 'stripe_recharge')::int,
                    $2::numeric, $3::numeric, $4)
            """,
            kind,
            previous,
            new,
            now - age,
        )

    await _run_until_caught_up(conn)

    assert await _cards(conn, "balance_chain_break") == set()
    examined = await conn.fetchval(
        "SELECT total_examined FROM monitoring_detector_watermarks"
        " WHERE detector_name = 'balance_chain_break'"
    )
    assert examined == 2
