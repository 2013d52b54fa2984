"""concurrent_transaction_detection: two non-failed rows of one card less than 2 s apart."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

from tests.db.payment_rows import event_data, log_row, rule_events, run_rule


async def _second_boundary(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT date_trunc('second', now()) - interval '1 minute'")


async def _the_pair(conn: asyncpg.Connection) -> tuple[int, int]:
    """(first, second) log ids of the only pair of the only race event."""
    [event] = await rule_events(conn, "concurrent_transaction_detection")
    [pair] = event_data(event)["pairs"]
    return pair["first_log_id"], pair["second_log_id"]


async def test_two_rows_straddling_a_second_boundary_are_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    first = await log_row(conn, "C1", at=boundary - timedelta(milliseconds=1), request="a")
    second = await log_row(conn, "C1", at=boundary + timedelta(milliseconds=1), request="b")

    result = await run_rule(conn, "detect_race_conditions")

    assert result["concurrent_transactions"] == 1
    [event] = await rule_events(conn, "concurrent_transaction_detection")
    assert (event["event_type"], event["severity"], event["card_id"]) == (
        "race_condition",
        "MEDIUM",
        "C1",
    )
    assert event["confidence_score"] == Decimal("0.70")
    data = event_data(event)
    assert data["log_ids"] == [first, second]
    assert data["time_span_seconds"] == Decimal("0.002")
    assert data["concurrent_count"] == 2
    assert json.loads(event["context_data"])["requires_investigation"] is False


async def test_rows_two_seconds_apart_are_not_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    await log_row(conn, "C1", at=boundary)
    await log_row(conn, "C1", at=boundary + timedelta(seconds=2))

    await run_rule(conn, "detect_race_conditions")

    assert await rule_events(conn, "concurrent_transaction_detection") == []


async def test_retries_carrying_the_same_client_request_id_are_not_a_race(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    await log_row(conn, "C1", at=boundary, request="same")
    await log_row(conn, "C1", at=boundary + timedelta(milliseconds=300), request="same")

    await run_rule(conn, "detect_race_conditions")

    assert await rule_events(conn, "concurrent_transaction_detection") == []


async def test_a_failed_row_next_to_a_completed_one_is_not_a_race(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    await log_row(conn, "C1", at=boundary, status="failed", request="x")
    await log_row(conn, "C1", at=boundary + timedelta(milliseconds=500), request="y")

    await run_rule(conn, "detect_race_conditions")

    assert await rule_events(conn, "concurrent_transaction_detection") == []


async def test_races_on_different_cards_are_each_reported(conn: asyncpg.Connection) -> None:
    # ORIGINAL_SYSTEM §3.7: any race event suppressed every other card's for a minute.
    boundary = await _second_boundary(conn)
    for card in ("C1", "C2"):
        await log_row(conn, card, at=boundary)
        await log_row(conn, card, at=boundary + timedelta(milliseconds=100))
    await log_row(conn, "C3", at=boundary)
    await log_row(conn, "C4", at=boundary)

    await run_rule(conn, "detect_race_conditions")

    assert [e["card_id"] for e in await rule_events(conn, "concurrent_transaction_detection")] == [
        "C1",
        "C2",
    ]


async def test_three_close_rows_are_one_event_with_two_pairs(conn: asyncpg.Connection) -> None:
    boundary = await _second_boundary(conn)
    for ms in (0, 700, 1400):
        await log_row(conn, "C1", at=boundary + timedelta(milliseconds=ms))

    await run_rule(conn, "detect_race_conditions")

    [event] = await rule_events(conn, "concurrent_transaction_detection")
    assert event["occurrence_count"] == 2
    data = event_data(event)
    assert (data["concurrent_count"], data["pair_count"]) == (3, 2)
    assert json.loads(event["context_data"])["requires_investigation"] is True


async def test_a_row_logged_late_with_an_earlier_time_is_paired_with_the_row_after_it(
    conn: asyncpg.Connection,
) -> None:
    # A payment whose transaction began first but logged last: its timestamp precedes a row
    # examined by an earlier run, so the pair is found by looking forward from the new row.
    boundary = await _second_boundary(conn)
    examined = await log_row(conn, "C1", at=boundary + timedelta(seconds=1), request="a")
    await log_row(conn, "C2", at=boundary + timedelta(seconds=30), request="x")  # latest row so far
    await run_rule(conn, "detect_race_conditions")
    assert await rule_events(conn, "concurrent_transaction_detection") == []

    late = await log_row(conn, "C1", at=boundary, request="b")
    await run_rule(conn, "detect_race_conditions")

    [event] = await rule_events(conn, "concurrent_transaction_detection")
    assert event["card_id"] == "C1"
    [pair] = event_data(event)["pairs"]
    assert (pair["first_log_id"], pair["second_log_id"]) == (late, examined)


async def test_a_row_later_than_everything_examined_is_paired_with_the_row_before_it(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    first = await log_row(conn, "C1", at=boundary, request="a")
    await run_rule(conn, "detect_race_conditions")
    second = await log_row(conn, "C1", at=boundary + timedelta(milliseconds=1500), request="b")
    await run_rule(conn, "detect_race_conditions")

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
    first = await log_row(conn, "C1", at=boundary, request="order-1")
    await run_rule(conn, "detect_race_conditions")
    second = await log_row(
        conn, "C1", at=boundary + timedelta(milliseconds=800), kind="standard_recharge"
    )
    await run_rule(conn, "detect_race_conditions")

    assert await _the_pair(conn) == (first, second)


async def test_a_late_row_without_a_request_id_before_an_examined_row_with_one_is_a_race(
    conn: asyncpg.Connection,
) -> None:
    boundary = await _second_boundary(conn)
    examined = await log_row(conn, "C1", at=boundary + timedelta(seconds=1), request="order-1")
    await log_row(conn, "C2", at=boundary + timedelta(seconds=30), request="x")
    await run_rule(conn, "detect_race_conditions")

    late = await log_row(conn, "C1", at=boundary, kind="standard_recharge")
    await run_rule(conn, "detect_race_conditions")

    assert await _the_pair(conn) == (late, examined)
