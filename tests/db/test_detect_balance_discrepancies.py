"""Balance rules: mismatch against the ledger, negative balance, balance chain break."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import put_card

ACTOR = json.dumps({"os_user": "alice", "ssh_client": "10.0.0.5 50000 22", "operator": "Alice"})


async def _now(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT now()")


async def _log(
    conn: asyncpg.Connection,
    card: str,
    kind: str,
    amount: str | None,
    previous: str | None,
    new: str | None,
    at: datetime,
    *,
    status: str = "completed",
    edge_function: str | None = None,
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp",
                                         edge_function_name)
        VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7, $8)
        RETURNING log_id
        """,
        card,
        kind,
        status,
        amount,
        previous,
        new,
        at,
        edge_function,
    )


async def _detect(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(
        await conn.fetchval("SELECT detect_balance_discrepancies()"), parse_float=Decimal
    )


async def _events(conn: asyncpg.Connection, algorithm: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM monitoring_events WHERE detection_algorithm = $1 ORDER BY event_id",
        algorithm,
    )


def _data(event: asyncpg.Record) -> dict[str, Any]:
    return json.loads(event["event_data"], parse_float=Decimal)


async def test_a_one_cent_surplus_is_flagged_with_its_sign(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "40.01")
    await _log(conn, "C1", "checkpoint_recharge", "50.00", "0.00", "50.00", now)
    await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00", now)

    result = await _detect(conn)

    assert result["balance_mismatches"] == 1
    [event] = await _events(conn, "balance_mismatch_detection")
    assert (event["severity"], event["event_type"]) == ("CRITICAL", "balance_discrepancy")
    assert event["affected_amount"] == Decimal("0.01")
    data = _data(event)
    assert data["discrepancy"] == Decimal("0.01")
    assert (data["actual_balance"], data["expected_balance"]) == (
        Decimal("40.01"),
        Decimal("40.00"),
    )
    assert data["expected_source"] == "last_balance_row"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM alert_history WHERE monitoring_event_id = $1", event["event_id"]
        )
        == 1
    )


async def test_a_card_holding_less_than_its_ledger_gets_a_negative_discrepancy(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "35.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00", now)
    await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00", now)

    await _detect(conn)

    [event] = await _events(conn, "balance_mismatch_detection")
    assert _data(event)["discrepancy"] == Decimal("-5.00")
    assert event["affected_amount"] == Decimal("5.00")


async def test_a_card_matching_its_ledger_is_not_flagged(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "40.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00", now)
    await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00", now)
    await _log(conn, "C1", "bar_order", "99.00", "40.00", "40.00", now, status="failed")

    result = await _detect(conn)

    assert result["success"] is True
    assert await _events(conn, "balance_mismatch_detection") == []
    assert await _events(conn, "balance_chain_break") == []


async def test_a_pre_existing_balance_with_a_consistent_chain_is_not_flagged(
    conn: asyncpg.Connection,
) -> None:
    # The card held 100.00 before the ledger started (the original assumed 0 and flagged it).
    now = await _now(conn)
    await put_card(conn, "OLD", "85.00")
    await _log(conn, "OLD", "bar_order", "10.00", "100.00", "90.00", now)
    await _log(conn, "OLD", "bar_order", "5.00", "90.00", "85.00", now)

    await _detect(conn)

    assert await _events(conn, "balance_mismatch_detection") == []
    assert await _events(conn, "balance_chain_break") == []


async def test_cards_without_ledger_rows_are_not_flagged(conn: asyncpg.Connection) -> None:
    now = await _now(conn)
    await put_card(conn, "SEEDED", "25.00")
    await put_card(conn, "ONLY_FAILED", "10.00")
    await _log(conn, "ONLY_FAILED", "bar_order", "20.00", "10.00", "10.00", now, status="failed")

    await _detect(conn)

    assert await _events(conn, "balance_mismatch_detection") == []


async def test_without_balance_columns_the_signed_sum_counts_standard_recharges_as_credits(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "GOOD", "35.00")
    await _log(conn, "GOOD", "standard_recharge", "50.00", None, None, now)
    await _log(conn, "GOOD", "bar_order", "15.00", None, None, now)
    await put_card(conn, "BAD", "50.00")
    await _log(conn, "BAD", "standard_recharge", "50.00", None, None, now)
    await _log(conn, "BAD", "bar_order", "15.00", None, None, now)

    await _detect(conn)

    [event] = await _events(conn, "balance_mismatch_detection")
    assert event["card_id"] == "BAD"
    data = _data(event)
    assert (data["expected_balance"], data["discrepancy"]) == (Decimal("35.00"), Decimal("15.00"))
    assert data["expected_source"] == "signed_sum"


async def test_a_card_whose_only_ledger_is_of_an_unclassified_type_is_not_judged(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "12.00")
    await _log(conn, "C1", "manual_correction", "12.00", None, None, now)

    await _detect(conn)

    assert await _events(conn, "balance_mismatch_detection") == []


async def test_the_mirror_rows_of_the_original_bar_orders_trigger_are_not_counted_twice(
    conn: asyncpg.Connection,
) -> None:
    # ORIGINAL_SYSTEM §9.2.1: a balance-less 'bar-order-trigger' row duplicated every order.
    now = await _now(conn)
    await put_card(conn, "C1", "40.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", None, None, now - timedelta(minutes=1))
    await _log(conn, "C1", "bar_order", "10.00", None, None, now)
    await _log(conn, "C1", "bar_order", "10.00", None, None, now, edge_function="bar-order-trigger")
    await conn.execute("SELECT detect_race_conditions()")

    await _detect(conn)

    assert await _events(conn, "balance_mismatch_detection") == []
    assert await _events(conn, "concurrent_transaction_detection") == []


async def test_a_repeated_sweep_updates_the_mismatch_event_instead_of_adding_one(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "41.00")
    await _log(conn, "C1", "stripe_recharge", "40.00", "0.00", "40.00", now)

    first = await _detect(conn)
    second = await _detect(conn)
    await conn.execute("SELECT run_monitoring_detection_cycle()")

    assert (first["balance_mismatches"], second["balance_mismatches"]) == (1, 1)
    assert (first["events_created"], second["events_created"], second["events_updated"]) == (
        1,
        0,
        1,
    )
    [event] = await _events(conn, "balance_mismatch_detection")
    assert event["occurrence_count"] == 3
    assert event["last_seen_at"] > event["detection_timestamp"]
    assert await conn.fetchval("SELECT count(*) FROM alert_history") == 1


async def test_a_false_positive_mismatch_stays_quiet_until_its_evidence_changes(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "41.00")
    await _log(conn, "C1", "stripe_recharge", "40.00", "0.00", "40.00", now)
    await _detect(conn)
    [event] = await _events(conn, "balance_mismatch_detection")
    await conn.execute(
        "SELECT mark_monitoring_event_false_positive($1, $2::jsonb, 'goodwill euro')",
        event["event_id"],
        ACTOR,
    )

    again = await _detect(conn)
    assert again["rules"]["balance_mismatch_detection"]["events_suppressed"] == 1
    assert len(await _events(conn, "balance_mismatch_detection")) == 1

    await put_card(conn, "C1", "45.00")
    await _detect(conn)
    events = await _events(conn, "balance_mismatch_detection")
    assert [e["status"] for e in events] == ["FALSE_POSITIVE", "OPEN"]


async def test_a_resolved_mismatch_that_is_still_there_is_raised_again(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "41.00")
    await _log(conn, "C1", "stripe_recharge", "40.00", "0.00", "40.00", now)
    await _detect(conn)
    [event] = await _events(conn, "balance_mismatch_detection")
    await conn.execute(
        "SELECT resolve_monitoring_event($1, $2::jsonb, 'refunded')", event["event_id"], ACTOR
    )

    await _detect(conn)

    events = await _events(conn, "balance_mismatch_detection")
    assert [e["status"] for e in events] == ["RESOLVED", "OPEN"]


async def test_a_negative_balance_is_a_high_event_and_zero_is_not(conn: asyncpg.Connection) -> None:
    await put_card(conn, "NEG", "-0.01")
    await put_card(conn, "ZERO", "0.00")

    result = await _detect(conn)

    assert result["negative_balances"] == 1
    [event] = await _events(conn, "negative_balance_detection")
    assert (event["card_id"], event["severity"], event["affected_amount"]) == (
        "NEG",
        "HIGH",
        Decimal("0.01"),
    )
    assert _data(event)["negative_balance"] == Decimal("-0.01")
    assert await conn.fetchval("SELECT count(*) FROM alert_history") == 0


async def test_a_lost_update_breaks_the_balance_chain(conn: asyncpg.Connection) -> None:
    # Two orders both read 50.00: the second one's previous balance ignores the first.
    now = await _now(conn)
    await put_card(conn, "C1", "45.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00", now)
    first = await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00", now)
    second = await _log(conn, "C1", "bar_order", "5.00", "50.00", "45.00", now)

    result = await _detect(conn)

    assert result["chain_breaks"] == 1
    [event] = await _events(conn, "balance_chain_break")
    assert (event["severity"], event["affected_amount"]) == ("HIGH", Decimal("10.00"))
    data = _data(event)
    assert data["log_id"] == second
    assert data["preceding_log_id"] == first
    assert data["break_kinds"] == ["chain_gap"]
    assert data["chain_gap"] == Decimal("10.00")
    # The card matches its last balance row: the chain break is the only symptom.
    assert await _events(conn, "balance_mismatch_detection") == []


async def test_a_balance_change_that_disagrees_with_the_amount_breaks_the_chain(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "38.00")
    await _log(conn, "C1", "checkpoint_recharge", "50.00", "0.00", "50.00", now)
    await _log(conn, "C1", "bar_order", "10.00", "50.00", "38.00", now)

    await _detect(conn)

    [event] = await _events(conn, "balance_chain_break")
    data = _data(event)
    assert data["break_kinds"] == ["amount_mismatch"]
    assert (data["actual_change"], data["expected_change"]) == (
        Decimal("-12.00"),
        Decimal("-10.00"),
    )


async def test_a_late_row_is_judged_and_so_is_the_row_after_it(conn: asyncpg.Connection) -> None:
    # Rows 1 and 3 are examined first; row 2 shows up later (its id was a gap) and changes
    # which row precedes row 3.
    now = await _now(conn)
    await put_card(conn, "C1", "40.00")
    insert = """
        INSERT INTO app_transaction_log (log_id, card_id, transaction_type, status,
                                         amount_involved, previous_balance, new_balance,
                                         "timestamp")
        VALUES ($1, 'C1', $2, 'completed', $3::numeric, $4::numeric, $5::numeric, $6)
    """
    await conn.execute(insert, 1, "stripe_recharge", "50.00", "0.00", "50.00", now)
    await conn.execute(insert, 3, "bar_order", "10.00", "50.00", "40.00", now)
    await _detect(conn)
    assert await _events(conn, "balance_chain_break") == []

    await conn.execute(insert, 2, "bar_order", "5.00", "50.00", "45.00", now)
    result = await _detect(conn)

    assert result["rules"]["balance_chain_break"]["late_rows"] == 1
    [event] = await _events(conn, "balance_chain_break")
    data = _data(event)
    assert (data["log_id"], data["preceding_log_id"]) == (3, 2)
    assert data["break_kinds"] == ["chain_gap"]


async def test_the_critical_job_checks_the_balances_of_cards_with_new_rows(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "TOUCHED", "41.00")
    await _log(conn, "TOUCHED", "stripe_recharge", "40.00", "0.00", "40.00", now)
    await put_card(conn, "UNTOUCHED", "-3.00")

    result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))

    assert result["success"] is True
    assert result["rules"]["balance_mismatch_detection"]["cards_checked"] == 1
    assert [e["card_id"] for e in await _events(conn, "balance_mismatch_detection")] == ["TOUCHED"]
    # The untouched card waits for the medium job's sweep.
    assert await _events(conn, "negative_balance_detection") == []
    medium = json.loads(await conn.fetchval("SELECT run_medium_detection()"))
    assert medium["success"] is True
    assert [e["card_id"] for e in await _events(conn, "negative_balance_detection")] == [
        "UNTOUCHED"
    ]


async def test_the_sweep_counts_log_rows_the_card_ledger_has_not_folded_yet(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "50.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00", now)
    await _detect(conn)  # builds the card ledger
    await conn.execute("UPDATE monitoring_settings SET ledger_batch_size = 1")
    await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00", now)
    await _log(conn, "C1", "bar_order", "10.00", "40.00", "30.00", now)
    await put_card(conn, "C1", "30.00")

    incremental = json.loads(await conn.fetchval("SELECT run_critical_detection()"))

    rule = incremental["rules"]["balance_mismatch_detection"]
    assert (rule["rows_examined"], rule["backlog"], rule["cards_checked"]) == (1, True, 1)
    assert await _events(conn, "balance_mismatch_detection") == []


async def test_a_sweep_waits_for_the_card_ledger_to_be_built_and_says_so(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET ledger_batch_size = 2")
    now = await _now(conn)
    await put_card(conn, "C1", "99.00")
    for i in range(3):
        await _log(conn, "C1", "stripe_recharge", "10.00", f"{10 * i}", f"{10 * i + 10}", now)

    building = json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('balance_mismatch_detection', 'sweep')")
    )
    built = json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('balance_mismatch_detection', 'sweep')")
    )

    assert building["success"] is True
    assert building["backlog"] is True
    assert building["ledger_rebuilt"] is True
    assert building["skipped"] == "card ledger is still being built from the log"
    assert (built["backlog"], built["cards_checked"], built["events_created"]) == (False, 1, 1)
    ledger = await conn.fetchrow("SELECT * FROM monitoring_card_ledger WHERE card_id = 'C1'")
    assert (ledger["completed_rows"], ledger["last_balance"]) == (3, Decimal("30.00"))


async def test_changing_the_transaction_type_settings_rebuilds_the_card_ledger(
    conn: asyncpg.Connection,
) -> None:
    now = await _now(conn)
    await put_card(conn, "C1", "12.00")
    await _log(conn, "C1", "refund", "12.00", None, None, now)
    await _detect(conn)
    assert await _events(conn, "balance_mismatch_detection") == []  # refund: unclassified

    await conn.execute(
        "UPDATE monitoring_settings SET credit_transaction_types ="
        " credit_transaction_types || '{refund}'::text[]"
    )
    await put_card(conn, "C1", "13.00")
    result = await _detect(conn)

    assert result["rules"]["balance_mismatch_detection"]["ledger_rebuilt"] is True
    [event] = await _events(conn, "balance_mismatch_detection")
    assert _data(event)["expected_balance"] == Decimal("12.00")
    assert json.loads(await conn.fetchval("SELECT rebuild_monitoring_card_ledger()"))["rebuilt"]
