"""concurrent_transaction_detection: two non-failed rows of one card less than 2 s apart."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg


async def _second_boundary(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT date_trunc('second', now()) - interval '1 minute'")


async def _log(
    conn: asyncpg.Connection,
    card: str,
    at: datetime,
    *,
    status: str = "completed",
    request: str | None = None,
    kind: str = "bar_order",
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         "timestamp", client_request_id)
        VALUES ($1, $2, $3, 5.00, $4, $5)
        RETURNING log_id
        """,
        card,
        kind,
        status,
        at,
        request,
    )


async def _detect(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(await conn.fetchval("SELECT detect_race_conditions()"), parse_float=Decimal)


async def _events(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM monitoring_events"
        " WHERE detection_algorithm = 'concurrent_transaction_detection' ORDER BY event_id"
    )


def _data(event: asyncpg.Record) -> dict[str, Any]:
    return json.loads(event["event_data"], parse_float=Decimal)


async def _the_pair(conn: asyncpg.Connection) -> tuple[int, int]:
    """(first, second) log ids of the only pair of the only race event."""
    [event] = await _events(conn)
    [pair] = _data(event)["pairs"]
    return pair["first_log_id"], pair["second_log_id"]


async def test_two_rows_straddling_a_second_boundary_are_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    first = await _log(conn, "C1", boundary - timedelta(milliseconds=1), request="a")
    second = await _log(conn, "C1", boundary + timedelta(milliseconds=1), request="b")

    result = await _detect(conn)

    assert result["concurrent_transactions"] == 1
    [event] = await _events(conn)
    assert (event["event_type"], event["severity"], event["card_id"]) == (
        "race_condition",
        "MEDIUM",
        "C1",
    )
    assert event["confidence_score"] == Decimal("0.70")
    data = _data(event)
    assert data["log_ids"] == [first, second]
    assert data["time_span_seconds"] == Decimal("0.002")
    assert data["concurrent_count"] == 2
    assert json.loads(event["context_data"])["requires_investigation"] is False


async def test_rows_two_seconds_apart_are_not_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    await _log(conn, "C1", boundary)
    await _log(conn, "C1", boundary + timedelta(seconds=2))

    await _detect(conn)

    assert await _events(conn) == []


async def test_retries_carrying_the_same_client_request_id_are_not_a_race(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    await _log(conn, "C1", boundary, request="same")
    await _log(conn, "C1", boundary + timedelta(milliseconds=300), request="same")

    await _detect(conn)

    assert await _events(conn) == []


async def test_a_failed_row_next_to_a_completed_one_is_not_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    await _log(conn, "C1", boundary, status="failed", request="x")
    await _log(conn, "C1", boundary + timedelta(milliseconds=500), request="y")

    await _detect(conn)

    assert await _events(conn) == []


async def test_races_on_different_cards_are_each_reported(conn: asyncpg.Connection) -> None:
    # ORIGINAL_SYSTEM §3.7: any race event suppressed every other card's for a minute.
    boundary = await _second_boundary(conn)
    for card in ("C1", "C2"):
        await _log(conn, card, boundary)
        await _log(conn, card, boundary + timedelta(milliseconds=100))
    await _log(conn, "C3", boundary)
    await _log(conn, "C4", boundary)

    await _detect(conn)

    assert [e["card_id"] for e in await _events(conn)] == ["C1", "C2"]


async def test_three_close_rows_are_one_event_with_two_pairs(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    for ms in (0, 700, 1400):
        await _log(conn, "C1", boundary + timedelta(milliseconds=ms))

    await _detect(conn)

    [event] = await _events(conn)
    assert event["occurrence_count"] == 2
    data = _data(event)
    assert (data["concurrent_count"], data["pair_count"]) == (3, 2)
    assert json.loads(event["context_data"])["requires_investigation"] is True


async def test_a_row_logged_late_with_an_earlier_time_is_paired_with_the_row_after_it(
    conn: asyncpg.Connection,
) -> None:
    # A payment whose transaction began first but logged last: its timestamp precedes a row
    # examined by an earlier run, so the pair is found by looking forward from the new row.
    boundary = await _second_boundary(conn)
    examined = await _log(conn, "C1", boundary + timedelta(seconds=1), request="a")
    await _log(conn, "C2", boundary + timedelta(seconds=30), request="x")  # latest row so far
    await _detect(conn)
    assert await _events(conn) == []

    late = await _log(conn, "C1", boundary, request="b")
    await _detect(conn)

    [event] = await _events(conn)
    assert event["card_id"] == "C1"
    [pair] = _data(event)["pairs"]
    assert (pair["first_log_id"], pair["second_log_id"]) == (late, examined)


async def test_a_row_later_than_everything_examined_is_paired_with_the_row_before_it(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    first = await _log(conn, "C1", boundary, request="a")
    await _detect(conn)
    second = await _log(conn, "C1", boundary + timedelta(milliseconds=1500), request="b")
    await _detect(conn)

    assert await _the_pair(conn) == (first, second)
    state = await conn.fetchrow(
        "SELECT max_row_time FROM monitoring_detector_watermarks"
        " WHERE detector_name = 'concurrent_transaction_detection'"
    )
    assert state["max_row_time"] == boundary + timedelta(milliseconds=1500)


async def test_a_new_row_without_a_request_id_after_an_examined_row_with_one_is_a_race(
    conn: asyncpg.Connection,
) -> None:
    # "Unless both carry the same client_request_id": a row without one is never a retry. The
    # rule wrote NOT (p.crid IS NOT NULL AND p.crid = n.crid), which is NULL — so false — when
    # only the earlier row has one: found while both rows were new (from the earlier row's
    # side), missed when the later row came in a later run (a recharge without a request id
    # just after a bar order with one).
    boundary = await _second_boundary(conn)
    first = await _log(conn, "C1", boundary, request="order-1")
    await _detect(conn)
    second = await _log(
        conn, "C1", boundary + timedelta(milliseconds=800), kind="standard_recharge"
    )
    await _detect(conn)

    assert await _the_pair(conn) == (first, second)


async def test_a_late_row_without_a_request_id_before_an_examined_row_with_one_is_a_race(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    examined = await _log(conn, "C1", boundary + timedelta(seconds=1), request="order-1")
    await _log(conn, "C2", boundary + timedelta(seconds=30), request="x")
    await _detect(conn)

    late = await _log(conn, "C1", boundary, kind="standard_recharge")
    await _detect(conn)

    assert await _the_pair(conn) == (late, examined)
