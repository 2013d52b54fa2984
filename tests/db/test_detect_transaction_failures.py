"""Transaction-failure rules: deduction on failure, consecutive failures, failure spike."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import asyncpg

from tests.db.payment_rows import db_now, event_data, log_row, rule_events, run_rule


async def test_a_failed_payment_that_changed_the_balance_raises_one_critical_event_and_alert(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('C1', 40.00)")
    log_id = await log_row(
        conn, "C1", status="failed", at=now, amount="10.00", previous="50.00", new="40.00"
    )

    result = await run_rule(conn, "detect_transaction_failures")

    assert result["success"] is True
    assert result["balance_deduction_failures"] == 1
    [event] = await rule_events(conn, "balance_deduction_on_failure")
    assert (event["event_type"], event["severity"], event["card_id"]) == (
        "transaction_failure",
        "CRITICAL",
        "C1",
    )
    assert event["confidence_score"] == Decimal("1.00")
    assert event["affected_amount"] == Decimal("10.00")
    data = event_data(event)
    assert data["log_id"] == log_id
    assert (data["previous_balance"], data["new_balance"], data["discrepancy"]) == (
        Decimal("50.00"),
        Decimal("40.00"),
        Decimal("10.00"),
    )
    assert data["current_balance"] == Decimal("40.00")
    context = json.loads(event["context_data"])
    assert context["requires_immediate_investigation"] is True
    alert = await conn.fetchrow(
        "SELECT * FROM alert_history WHERE monitoring_event_id = $1", event["event_id"]
    )
    assert alert["alert_level"] == "CRITICAL"
    assert alert["alert_message"] == "Critical transaction_failure detected for card C1"


async def test_a_failed_payment_with_unchanged_balances_is_not_a_deduction(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await log_row(conn, "C1", status="failed", at=now, previous="50.00", new="50.00")
    await log_row(conn, "C2", status="failed", at=now, previous=None, new=None)
    await log_row(conn, "C3", status="completed", at=now, previous="50.00", new="45.00")

    await run_rule(conn, "detect_transaction_failures")

    assert await rule_events(conn, "balance_deduction_on_failure") == []


async def test_a_deduction_on_a_card_missing_from_table_cards_is_still_reported(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await log_row(conn, "GHOST", status="failed", at=now, previous="20.00", new="15.00")

    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "balance_deduction_on_failure")
    assert event["card_id"] == "GHOST"
    assert event_data(event)["card_known"] is False
    assert json.loads(event["context_data"])["unknown_card"] is True


async def test_each_failed_transaction_gets_its_own_deduction_event(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await log_row(conn, "C1", status="failed", at=now, previous="20.00", new="15.00")
    await log_row(conn, "C1", status="failed", at=now, previous="15.00", new="10.00")

    await run_rule(conn, "detect_transaction_failures")
    await run_rule(conn, "detect_transaction_failures")

    events = await rule_events(conn, "balance_deduction_on_failure")
    assert len(events) == 2
    assert {e["occurrence_count"] for e in events} == {1}
    assert len({e["fingerprint"] for e in events}) == 2


async def test_three_failures_of_one_card_within_ten_minutes_are_consecutive_failures(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    start = now - timedelta(minutes=20)
    ids = [
        await log_row(conn, "C1", status="failed", at=start + timedelta(minutes=m))
        for m in (0, 4, 9)
    ]
    await log_row(
        conn, "C1", status="completed", at=start + timedelta(minutes=5), previous="9", new="4"
    )

    result = await run_rule(conn, "detect_transaction_failures")

    assert result["consecutive_failures"] == 1
    [event] = await rule_events(conn, "consecutive_failures")
    assert (event["severity"], event["card_id"], event["occurrence_count"]) == ("HIGH", "C1", 1)
    assert event["confidence_score"] == Decimal("0.90")
    data = event_data(event)
    assert data["failure_count"] == 3
    assert data["failed_log_ids"] == ids
    assert data["time_span_minutes"] == Decimal("9.00")


async def test_three_failures_spread_over_more_than_ten_minutes_are_not_consecutive(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    start = now - timedelta(minutes=30)
    for offset in (timedelta(0), timedelta(minutes=5), timedelta(minutes=10, seconds=1)):
        await log_row(conn, "C1", status="failed", at=start + offset)
    await log_row(conn, "C2", status="failed", at=start)
    await log_row(conn, "C3", status="failed", at=start)

    await run_rule(conn, "detect_transaction_failures")

    assert await rule_events(conn, "consecutive_failures") == []


async def test_a_burst_inside_a_longer_series_is_found_by_the_sliding_window(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    start = now - timedelta(minutes=50)
    # 0, 8, 16, 19, 25 min: no calendar 10-minute bucket holds 3, the window 16..25 does.
    for minute in (0, 8, 16, 19, 25):
        await log_row(conn, "C1", status="failed", at=start + timedelta(minutes=minute))

    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "consecutive_failures")
    assert event_data(event)["failure_count"] == 3


async def test_a_further_failure_updates_the_consecutive_failure_event_instead_of_adding_one(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    start = now - timedelta(minutes=15)
    for minute in (0, 1, 2):
        await log_row(conn, "C1", status="failed", at=start + timedelta(minutes=minute))
    await run_rule(conn, "detect_transaction_failures")

    await log_row(conn, "C1", status="failed", at=start + timedelta(minutes=3))
    await run_rule(conn, "detect_transaction_failures")
    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "consecutive_failures")
    assert event["occurrence_count"] == 2
    assert event_data(event)["failure_count"] == 4
    assert event["last_seen_at"] >= event["detection_timestamp"]


async def test_refused_payments_of_the_reference_procedures_are_failures_not_deductions(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('POOR', 1.00)")
    for attempt in range(3):
        result = json.loads(
            await conn.fetchval(
                "SELECT sp_process_bar_order($1, $2::jsonb, $3, $4, 1)",
                "POOR",
                json.dumps([{"name": "beer", "unit_price": "5.00", "quantity": 1}]),
                Decimal("5.00"),
                f"refused-{attempt}",
            )
        )
        assert result["error_code"] == "INSUFFICIENT_FUNDS"

    await run_rule(conn, "detect_transaction_failures")

    assert await rule_events(conn, "balance_deduction_on_failure") == []
    [event] = await rule_events(conn, "consecutive_failures")
    assert event["card_id"] == "POOR"


async def _traffic(conn: asyncpg.Connection, total: int, failed: int) -> None:
    # Failures last: every earlier (sliding) window holds fewer rows or no failure.
    now = await db_now(conn)
    start = now - timedelta(minutes=10)
    for i in range(total):
        status = "failed" if i >= total - failed else "completed"
        await log_row(conn, f"S{i}", status=status, at=start + timedelta(seconds=20 * i))


async def test_more_than_ten_transactions_with_over_five_percent_failed_are_a_failure_spike(
    conn: asyncpg.Connection,
) -> None:
    await _traffic(conn, total=11, failed=1)

    result = await run_rule(conn, "detect_transaction_failures")

    assert result["system_failure_spikes"] == 1
    [event] = await rule_events(conn, "system_failure_spike")
    assert (event["severity"], event["card_id"], event["fingerprint"]) == ("MEDIUM", None, "system")
    data = event_data(event)
    assert (data["total_transactions"], data["failed_transactions"]) == (11, 1)
    assert data["failure_rate_percent"] == Decimal("9.09")
    assert json.loads(event["context_data"])["requires_system_investigation"] is False


async def test_ten_transactions_are_never_a_spike_whatever_failed(conn: asyncpg.Connection) -> None:
    await _traffic(conn, total=10, failed=4)

    await run_rule(conn, "detect_transaction_failures")

    assert await rule_events(conn, "system_failure_spike") == []


async def test_a_failure_rate_of_exactly_five_percent_is_not_a_spike(
    conn: asyncpg.Connection,
) -> None:
    await _traffic(conn, total=20, failed=1)

    await run_rule(conn, "detect_transaction_failures")

    assert await rule_events(conn, "system_failure_spike") == []


async def test_a_spike_within_a_sliding_window_is_found_even_if_the_quarter_hour_is_fine(
    conn: asyncpg.Connection,
) -> None:
    # 1 failure among 20 rows is 5 %, but the 11 rows ending at it form a window of 9.09 %.
    now = await db_now(conn)
    start = now - timedelta(minutes=14)
    for i in range(20):
        await log_row(
            conn,
            f"S{i}",
            status="failed" if i == 10 else "completed",
            at=start + timedelta(seconds=30 * i),
        )

    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "system_failure_spike")
    assert event_data(event)["total_transactions"] == 11


async def test_a_failure_rate_above_ten_percent_makes_the_spike_high(
    conn: asyncpg.Connection,
) -> None:
    await _traffic(conn, total=11, failed=4)

    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "system_failure_spike")
    assert event["severity"] == "HIGH"
    assert event_data(event)["failure_rate_percent"] == Decimal("36.36")
    assert json.loads(event["context_data"])["requires_system_investigation"] is True


async def test_thresholds_come_from_the_settings_row(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE monitoring_settings SET consecutive_failure_count = 2")
    now = await db_now(conn)
    await log_row(conn, "C1", status="failed", at=now - timedelta(minutes=2))
    await log_row(conn, "C1", status="failed", at=now - timedelta(minutes=1))

    await run_rule(conn, "detect_transaction_failures")

    [event] = await rule_events(conn, "consecutive_failures")
    assert event_data(event)["threshold_count"] == 2
