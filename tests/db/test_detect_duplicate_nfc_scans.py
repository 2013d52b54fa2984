"""temporal_duplicate_detection: consecutive scans of one card less than 5 s apart."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg

from tests.db.payment_rows import db_now, event_data, rule_events, run_rule, scan_row


async def test_two_scans_of_one_card_less_than_five_seconds_apart_are_a_duplicate(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    first = await scan_row(conn, "C1", now - timedelta(seconds=10))
    second = await scan_row(conn, "C1", now - timedelta(seconds=5, milliseconds=1))

    result = await run_rule(conn, "detect_duplicate_nfc_scans")

    assert result["temporal_duplicates"] == 1
    [event] = await rule_events(conn, "temporal_duplicate_detection")
    assert (event["event_type"], event["severity"], event["card_id"]) == (
        "duplicate_nfc",
        "MEDIUM",
        "C1",
    )
    assert event["confidence_score"] == Decimal("0.80")
    data = event_data(event)
    assert data["scan_ids"] == [first, second]
    assert data["scan_count"] == 2
    assert data["min_gap_seconds"] == Decimal("4.999")
    assert data["threshold_seconds"] == 5


async def test_scans_five_seconds_apart_are_not_a_duplicate(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=10))
    await scan_row(conn, "C1", now - timedelta(seconds=5))

    await run_rule(conn, "detect_duplicate_nfc_scans")

    assert await rule_events(conn, "temporal_duplicate_detection") == []


async def test_a_third_scan_outside_five_seconds_does_not_hide_a_close_pair(
    conn: asyncpg.Connection,
) -> None:
    # ORIGINAL_SYSTEM §3.6: the whole 2-minute group had to span less than 5 s.
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=20))
    await scan_row(conn, "C1", now - timedelta(seconds=19))
    await scan_row(conn, "C1", now - timedelta(seconds=10))

    await run_rule(conn, "detect_duplicate_nfc_scans")

    [event] = await rule_events(conn, "temporal_duplicate_detection")
    assert event_data(event)["pair_count"] == 1


async def test_scans_already_marked_duplicate_by_the_debouncer_are_ignored(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=10))
    await scan_row(conn, "C1", now - timedelta(seconds=9), status="duplicate")
    await scan_row(conn, "C1", now - timedelta(seconds=8), status="duplicate")

    await run_rule(conn, "detect_duplicate_nfc_scans")

    assert await rule_events(conn, "temporal_duplicate_detection") == []


async def test_scans_of_different_cards_are_never_paired(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=10))
    await scan_row(conn, "C2", now - timedelta(seconds=10))
    await scan_row(conn, "C3", now - timedelta(seconds=9))

    await run_rule(conn, "detect_duplicate_nfc_scans")

    assert await rule_events(conn, "temporal_duplicate_detection") == []


async def test_new_pairs_of_a_card_add_occurrences_to_its_active_event(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=30))
    await scan_row(conn, "C1", now - timedelta(seconds=29))
    await run_rule(conn, "detect_duplicate_nfc_scans")
    await scan_row(conn, "C1", now - timedelta(seconds=28))
    await scan_row(conn, "C1", now - timedelta(seconds=27))

    await run_rule(conn, "detect_duplicate_nfc_scans")
    await run_rule(conn, "detect_duplicate_nfc_scans")

    [event] = await rule_events(conn, "temporal_duplicate_detection")
    assert event["occurrence_count"] == 3
    assert event_data(event)["pair_count"] == 2


async def test_a_scan_arriving_late_is_paired_with_its_neighbours_on_both_sides(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await scan_row(conn, "C1", now - timedelta(seconds=60))
    await scan_row(conn, "C1", now - timedelta(seconds=50))
    await run_rule(conn, "detect_duplicate_nfc_scans")
    assert await rule_events(conn, "temporal_duplicate_detection") == []

    late = await scan_row(conn, "C1", now - timedelta(seconds=56))
    await run_rule(conn, "detect_duplicate_nfc_scans")

    [event] = await rule_events(conn, "temporal_duplicate_detection")
    assert late in event_data(event)["scan_ids"]
    assert event_data(event)["pair_count"] == 1
