"""temporal_duplicate_detection: consecutive scans of one card less than 5 s apart."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg


async def _now(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT now()")


async def _scan(conn: asyncpg.Connection, card: str, at: datetime, status: str = "success") -> int:
    return await conn.fetchval(
        "INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status)"
        " VALUES ($1, $2, $3) RETURNING scan_log_id",
        card,
        at,
        status,
    )


async def _detect(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(
        await conn.fetchval("SELECT detect_duplicate_nfc_scans()"), parse_float=Decimal
    )


async def _events(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM monitoring_events"
        " WHERE detection_algorithm = 'temporal_duplicate_detection' ORDER BY event_id"
    )


def _data(event: asyncpg.Record) -> dict[str, Any]:
    return json.loads(event["event_data"], parse_float=Decimal)


async def test_two_scans_of_one_card_less_than_five_seconds_apart_are_a_duplicate(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    first = await _scan(conn, "C1", now - timedelta(seconds=10))
    second = await _scan(conn, "C1", now - timedelta(seconds=5, milliseconds=1))

    result = await _detect(conn)

    assert result["temporal_duplicates"] == 1
    [event] = await _events(conn)
    assert (event["event_type"], event["severity"], event["card_id"]) == (
        "duplicate_nfc",
        "MEDIUM",
        "C1",
    )
    assert event["confidence_score"] == Decimal("0.80")
    data = _data(event)
    assert data["scan_ids"] == [first, second]
    assert data["scan_count"] == 2
    assert data["min_gap_seconds"] == Decimal("4.999")
    assert data["threshold_seconds"] == 5


async def test_scans_five_seconds_apart_are_not_a_duplicate(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=10))
    await _scan(conn, "C1", now - timedelta(seconds=5))

    await _detect(conn)

    assert await _events(conn) == []


async def test_a_third_scan_outside_five_seconds_does_not_hide_a_close_pair(
    conn: asyncpg.Connection,
) -> None:
    # ORIGINAL_SYSTEM §3.6: the whole 2-minute group had to span less than 5 s.
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=20))
    await _scan(conn, "C1", now - timedelta(seconds=19))
    await _scan(conn, "C1", now - timedelta(seconds=10))

    await _detect(conn)

    [event] = await _events(conn)
    assert _data(event)["pair_count"] == 1


async def test_scans_already_marked_duplicate_by_the_debouncer_are_ignored(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=10))
    await _scan(conn, "C1", now - timedelta(seconds=9), status="duplicate")
    await _scan(conn, "C1", now - timedelta(seconds=8), status="duplicate")

    await _detect(conn)

    assert await _events(conn) == []


async def test_scans_of_different_cards_are_never_paired(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=10))
    await _scan(conn, "C2", now - timedelta(seconds=10))
    await _scan(conn, "C3", now - timedelta(seconds=9))

    await _detect(conn)

    assert await _events(conn) == []


async def test_new_pairs_of_a_card_add_occurrences_to_its_active_event(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=30))
    await _scan(conn, "C1", now - timedelta(seconds=29))
    await _detect(conn)
    await _scan(conn, "C1", now - timedelta(seconds=28))
    await _scan(conn, "C1", now - timedelta(seconds=27))

    await _detect(conn)
    await _detect(conn)

    [event] = await _events(conn)
    assert event["occurrence_count"] == 3
    assert _data(event)["pair_count"] == 2


async def test_a_scan_arriving_late_is_paired_with_its_neighbours_on_both_sides(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await _scan(conn, "C1", now - timedelta(seconds=60))
    await _scan(conn, "C1", now - timedelta(seconds=50))
    await _detect(conn)
    assert await _events(conn) == []

    late = await _scan(conn, "C1", now - timedelta(seconds=56))
    await _detect(conn)

    [event] = await _events(conn)
    assert late in _data(event)["scan_ids"]
    assert _data(event)["pair_count"] == 1
