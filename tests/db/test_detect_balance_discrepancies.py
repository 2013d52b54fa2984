"""Balance rules: mismatch against the ledger, negative balance, balance chain break."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import asyncpg

from tests.db.payment_rows import db_now, event_data, log_row, put_card, rule_events, run_rule

ACTOR = json.dumps({"os_user": "alice", "ssh_client": "10.0.0.5 50000 22", "operator": "Alice"})


async def test_a_one_cent_surplus_is_flagged_with_its_sign(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "40.01")
    await log_row(
        conn, "C1", kind="checkpoint_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00", at=now
    )

    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["balance_mismatches"] == 1
    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert (event["severity"], event["event_type"]) == ("CRITICAL", "balance_discrepancy")
    assert event["affected_amount"] == Decimal("0.01")
    data = event_data(event)
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
    now = await db_now(conn)
    await put_card(conn, "C1", "35.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00", at=now
    )

    await run_rule(conn, "detect_balance_discrepancies")

    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert event_data(event)["discrepancy"] == Decimal("-5.00")
    assert event["affected_amount"] == Decimal("5.00")


async def test_a_card_matching_its_ledger_is_not_flagged(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "40.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00", at=now
    )
    await log_row(
        conn,
        "C1",
        kind="bar_order",
        amount="99.00",
        previous="40.00",
        new="40.00",
        at=now,
        status="failed",
    )

    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["success"] is True
    assert await rule_events(conn, "balance_mismatch_detection") == []
    assert await rule_events(conn, "balance_chain_break") == []


async def test_a_pre_existing_balance_with_a_consistent_chain_is_not_flagged(
    conn: asyncpg.Connection,
) -> None:
    # The card held 100.00 before the ledger started (the original assumed 0 and flagged it).
    now = await db_now(conn)
    await put_card(conn, "OLD", "85.00")
    await log_row(
        conn, "OLD", kind="bar_order", amount="10.00", previous="100.00", new="90.00", at=now
    )
    await log_row(
        conn, "OLD", kind="bar_order", amount="5.00", previous="90.00", new="85.00", at=now
    )

    await run_rule(conn, "detect_balance_discrepancies")

    assert await rule_events(conn, "balance_mismatch_detection") == []
    assert await rule_events(conn, "balance_chain_break") == []


async def test_cards_without_ledger_rows_are_not_flagged(conn: asyncpg.Connection) -> None:
    now = await db_now(conn)
    await put_card(conn, "SEEDED", "25.00")
    await put_card(conn, "ONLY_FAILED", "10.00")
    await log_row(
        conn,
        "ONLY_FAILED",
        kind="bar_order",
        amount="20.00",
        previous="10.00",
        new="10.00",
        at=now,
        status="failed",
    )

    await run_rule(conn, "detect_balance_discrepancies")

    assert await rule_events(conn, "balance_mismatch_detection") == []


async def test_without_balance_columns_the_signed_sum_counts_standard_recharges_as_credits(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "GOOD", "35.00")
    await log_row(
        conn, "GOOD", kind="standard_recharge", amount="50.00", previous=None, new=None, at=now
    )
    await log_row(conn, "GOOD", kind="bar_order", amount="15.00", previous=None, new=None, at=now)
    await put_card(conn, "BAD", "50.00")
    await log_row(
        conn, "BAD", kind="standard_recharge", amount="50.00", previous=None, new=None, at=now
    )
    await log_row(conn, "BAD", kind="bar_order", amount="15.00", previous=None, new=None, at=now)

    await run_rule(conn, "detect_balance_discrepancies")

    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert event["card_id"] == "BAD"
    data = event_data(event)
    assert (data["expected_balance"], data["discrepancy"]) == (Decimal("35.00"), Decimal("15.00"))
    assert data["expected_source"] == "signed_sum"


async def test_a_card_whose_only_ledger_is_of_an_unclassified_type_is_not_judged(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "12.00")
    await log_row(
        conn, "C1", kind="manual_correction", amount="12.00", previous=None, new=None, at=now
    )

    await run_rule(conn, "detect_balance_discrepancies")

    assert await rule_events(conn, "balance_mismatch_detection") == []


async def test_the_mirror_rows_of_the_original_bar_orders_trigger_are_not_counted_twice(
    conn: asyncpg.Connection,
) -> None:
    # ORIGINAL_SYSTEM §9.2.1: a balance-less 'bar-order-trigger' row duplicated every order.
    now = await db_now(conn)
    await put_card(conn, "C1", "40.00")
    await log_row(
        conn,
        "C1",
        kind="stripe_recharge",
        amount="50.00",
        previous=None,
        new=None,
        at=now - timedelta(minutes=1),
    )
    await log_row(conn, "C1", kind="bar_order", amount="10.00", previous=None, new=None, at=now)
    await log_row(
        conn,
        "C1",
        kind="bar_order",
        amount="10.00",
        previous=None,
        new=None,
        at=now,
        edge_function="bar-order-trigger",
    )
    await conn.execute("SELECT detect_race_conditions()")

    await run_rule(conn, "detect_balance_discrepancies")

    assert await rule_events(conn, "balance_mismatch_detection") == []
    assert await rule_events(conn, "concurrent_transaction_detection") == []


async def test_a_repeated_sweep_updates_the_mismatch_event_instead_of_adding_one(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "41.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="40.00", previous="0.00", new="40.00", at=now
    )

    first = await run_rule(conn, "detect_balance_discrepancies")
    second = await run_rule(conn, "detect_balance_discrepancies")
    await conn.execute("SELECT run_monitoring_detection_cycle()")

    assert (first["balance_mismatches"], second["balance_mismatches"]) == (1, 1)
    assert (first["events_created"], second["events_created"], second["events_updated"]) == (
        1,
        0,
        1,
    )
    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert event["occurrence_count"] == 3
    assert event["last_seen_at"] > event["detection_timestamp"]
    assert await conn.fetchval("SELECT count(*) FROM alert_history") == 1


async def test_a_false_positive_mismatch_stays_quiet_until_its_evidence_changes(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "41.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="40.00", previous="0.00", new="40.00", at=now
    )
    await run_rule(conn, "detect_balance_discrepancies")
    [event] = await rule_events(conn, "balance_mismatch_detection")
    await conn.execute(
        "SELECT mark_monitoring_event_false_positive($1, $2::jsonb, 'goodwill euro')",
        event["event_id"],
        ACTOR,
    )

    again = await run_rule(conn, "detect_balance_discrepancies")
    assert again["rules"]["balance_mismatch_detection"]["events_suppressed"] == 1
    assert len(await rule_events(conn, "balance_mismatch_detection")) == 1

    await put_card(conn, "C1", "45.00")
    await run_rule(conn, "detect_balance_discrepancies")
    events = await rule_events(conn, "balance_mismatch_detection")
    assert [e["status"] for e in events] == ["FALSE_POSITIVE", "OPEN"]


async def test_a_resolved_mismatch_that_is_still_there_is_raised_again(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "41.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="40.00", previous="0.00", new="40.00", at=now
    )
    await run_rule(conn, "detect_balance_discrepancies")
    [event] = await rule_events(conn, "balance_mismatch_detection")
    await conn.execute(
        "SELECT resolve_monitoring_event($1, $2::jsonb, 'refunded')", event["event_id"], ACTOR
    )

    await run_rule(conn, "detect_balance_discrepancies")

    events = await rule_events(conn, "balance_mismatch_detection")
    assert [e["status"] for e in events] == ["RESOLVED", "OPEN"]


async def test_a_negative_balance_is_a_high_event_and_zero_is_not(conn: asyncpg.Connection) -> None:
    await put_card(conn, "NEG", "-0.01")
    await put_card(conn, "ZERO", "0.00")

    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["negative_balances"] == 1
    [event] = await rule_events(conn, "negative_balance_detection")
    assert (event["card_id"], event["severity"], event["affected_amount"]) == (
        "NEG",
        "HIGH",
        Decimal("0.01"),
    )
    assert event_data(event)["negative_balance"] == Decimal("-0.01")
    assert await conn.fetchval("SELECT count(*) FROM alert_history") == 0


async def test_a_lost_update_breaks_the_balance_chain(conn: asyncpg.Connection) -> None:
    # Two orders both read 50.00: the second one's previous balance ignores the first.
    now = await db_now(conn)
    await put_card(conn, "C1", "45.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    first = await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00", at=now
    )
    second = await log_row(
        conn, "C1", kind="bar_order", amount="5.00", previous="50.00", new="45.00", at=now
    )

    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["chain_breaks"] == 1
    [event] = await rule_events(conn, "balance_chain_break")
    assert (event["severity"], event["affected_amount"]) == ("HIGH", Decimal("10.00"))
    data = event_data(event)
    assert data["log_id"] == second
    assert data["preceding_log_id"] == first
    assert data["break_kinds"] == ["chain_gap"]
    assert data["chain_gap"] == Decimal("10.00")
    # The card matches its last balance row: the chain break is the only symptom.
    assert await rule_events(conn, "balance_mismatch_detection") == []


async def test_a_balance_change_that_disagrees_with_the_amount_breaks_the_chain(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "38.00")
    await log_row(
        conn, "C1", kind="checkpoint_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="38.00", at=now
    )

    await run_rule(conn, "detect_balance_discrepancies")

    [event] = await rule_events(conn, "balance_chain_break")
    data = event_data(event)
    assert data["break_kinds"] == ["amount_mismatch"]
    assert (data["actual_change"], data["expected_change"]) == (
        Decimal("-12.00"),
        Decimal("-10.00"),
    )


async def test_a_late_row_is_judged_and_so_is_the_row_after_it(conn: asyncpg.Connection) -> None:
    # Rows 1 and 3 are examined first; row 2 shows up later (its id was a gap) and changes
    # which row precedes row 3.
    now = await db_now(conn)
    await put_card(conn, "C1", "40.00")
    insert = """
        INSERT INTO app_transaction_log (log_id, card_id, transaction_type, status,
                                         amount_involved, previous_balance, new_balance,
                                         "timestamp")
        VALUES ($1, 'C1', $2, 'completed', $3::numeric, $4::numeric, $5::numeric, $6)
    """
    await conn.execute(insert, 1, "stripe_recharge", "50.00", "0.00", "50.00", now)
    await conn.execute(insert, 3, "bar_order", "10.00", "50.00", "40.00", now)
    await run_rule(conn, "detect_balance_discrepancies")
    assert await rule_events(conn, "balance_chain_break") == []

    await conn.execute(insert, 2, "bar_order", "5.00", "50.00", "45.00", now)
    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["rules"]["balance_chain_break"]["late_rows"] == 1
    [event] = await rule_events(conn, "balance_chain_break")
    data = event_data(event)
    assert (data["log_id"], data["preceding_log_id"]) == (3, 2)
    assert data["break_kinds"] == ["chain_gap"]


async def test_the_critical_job_checks_the_balances_of_cards_with_new_rows(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "TOUCHED", "41.00")
    await log_row(
        conn,
        "TOUCHED",
        kind="stripe_recharge",
        amount="40.00",
        previous="0.00",
        new="40.00",
        at=now,
    )
    await put_card(conn, "UNTOUCHED", "-3.00")

    result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))

    assert result["success"] is True
    assert result["rules"]["balance_mismatch_detection"]["cards_checked"] == 1
    assert [e["card_id"] for e in await rule_events(conn, "balance_mismatch_detection")] == [
        "TOUCHED"
    ]
    # The untouched card waits for the medium job's sweep.
    assert await rule_events(conn, "negative_balance_detection") == []
    medium = json.loads(await conn.fetchval("SELECT run_medium_detection()"))
    assert medium["success"] is True
    assert [e["card_id"] for e in await rule_events(conn, "negative_balance_detection")] == [
        "UNTOUCHED"
    ]


async def test_the_sweep_counts_log_rows_the_card_ledger_has_not_folded_yet(
    conn: asyncpg.Connection,
) -> None:
    now = await db_now(conn)
    await put_card(conn, "C1", "50.00")
    await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00", at=now
    )
    await run_rule(conn, "detect_balance_discrepancies")  # builds the card ledger
    await conn.execute("UPDATE monitoring_settings SET ledger_batch_size = 1")
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00", at=now
    )
    await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="40.00", new="30.00", at=now
    )
    await put_card(conn, "C1", "30.00")

    incremental = json.loads(await conn.fetchval("SELECT run_critical_detection()"))

    # The critical job no longer folds (issue 19): it judges C1 by its newest row's balance,
    # and the ledger stays one row behind for the medium job to fold.
    rule = incremental["rules"]["balance_mismatch_detection"]
    assert (rule["success"], rule["backlog"]) == (True, False)
    assert await rule_events(conn, "balance_mismatch_detection") == []
    ledger_behind = await conn.fetchval(
        "SELECT last_log_id < (SELECT max(log_id) FROM app_transaction_log)"
        " FROM monitoring_detector_watermarks WHERE detector_name = 'card_ledger'"
    )
    assert ledger_behind is True
    # The card changes with no log row: the exact comparison of a suspect card counts the
    # rows the ledger has not folded (here 30.00 is right, 25.00 is not).
    await put_card(conn, "C1", "25.00")
    await log_row(conn, "C1", kind="bar_order", status="failed", amount="1.00", at=now)
    await conn.fetchval("SELECT run_critical_detection()")
    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert event_data(event)["expected_balance"] == 30.0


async def test_a_sweep_waits_for_the_card_ledger_to_be_built_and_says_so(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET ledger_batch_size = 2")
    now = await db_now(conn)
    await put_card(conn, "C1", "99.00")
    for i in range(3):
        await log_row(
            conn,
            "C1",
            kind="stripe_recharge",
            amount="10.00",
            previous=f"{10 * i}",
            new=f"{10 * i + 10}",
            at=now,
        )

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
    now = await db_now(conn)
    await put_card(conn, "C1", "12.00")
    await log_row(conn, "C1", kind="refund", amount="12.00", previous=None, new=None, at=now)
    await run_rule(conn, "detect_balance_discrepancies")
    assert await rule_events(conn, "balance_mismatch_detection") == []  # refund: unclassified

    await conn.execute(
        "UPDATE monitoring_settings SET credit_transaction_types ="
        " credit_transaction_types || '{refund}'::text[]"
    )
    await put_card(conn, "C1", "13.00")
    result = await run_rule(conn, "detect_balance_discrepancies")

    assert result["rules"]["balance_mismatch_detection"]["ledger_rebuilt"] is True
    [event] = await rule_events(conn, "balance_mismatch_detection")
    assert event_data(event)["expected_balance"] == Decimal("12.00")
    assert json.loads(await conn.fetchval("SELECT rebuild_monitoring_card_ledger()"))["rebuilt"]


async def test_the_guide_detector_runs_the_chain_rule_and_both_balance_rules_as_sweeps(
    conn: asyncpg.Connection,
) -> None:
    result = await run_rule(conn, "detect_balance_discrepancies")

    rules = result["rules"]
    assert set(rules) == {
        "balance_chain_break",
        "balance_mismatch_detection",
        "negative_balance_detection",
    }
    assert rules["balance_chain_break"]["mode"] == "incremental"
    assert rules["balance_mismatch_detection"]["mode"] == "sweep"
    assert rules["negative_balance_detection"]["mode"] == "sweep"
