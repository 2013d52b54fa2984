"""The scheduler's job calls catch up several batches at once, and only what has a backlog."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

CRITICAL_RULES = (
    "balance_deduction_on_failure",
    "consecutive_failures",
    "system_failure_spike",  # issue 19.5: time to detect
    "balance_mismatch_detection",
    "negative_balance_detection",
    "balance_chain_break",
    "temporal_duplicate_detection",
    "concurrent_transaction_detection",
)


async def _failed(conn: asyncpg.Connection, cards: int, at: datetime, prefix: str) -> None:
    """One failed, balance-deducting row (one balance_deduction_on_failure event) per card."""
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        SELECT $1 || g, 'bar_order', 'failed', 5.00, 9.00, 4.00,
               $2::timestamptz + g * interval '1 second'
          FROM generate_series(1, $3) AS g
        """,
        prefix,
        at,
        cards,
    )


async def _json(conn: asyncpg.Connection, sql: str) -> dict[str, Any]:
    return json.loads(await conn.fetchval(sql))


async def _deductions(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT card_id, occurrence_count FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_deduction_on_failure' ORDER BY card_id"
    )
    return [(r["card_id"], r["occurrence_count"]) for r in rows]


async def _claim_batches(conn: asyncpg.Connection, batches: int) -> None:
    """The critical job's claim size while behind (ten unless slow rounds halved it:
    test_critical_claim_size.py), set so that these tests do not depend on it."""
    await conn.execute("UPDATE monitoring_critical_claim SET batches = $1", batches)


async def test_one_critical_call_with_a_budget_catches_up_every_batch_exactly_once(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 10")
    await _claim_batches(conn, 10)
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 25, now - timedelta(minutes=30), "B")

    job = await _json(conn, "SELECT run_critical_detection_batches(60000)")

    assert job["success"] is True and job["backlog"] is False
    assert job["rounds"] == 1  # one run of each rule takes up to ten batches
    assert set(job["rules"]) == set(CRITICAL_RULES)
    deduction = job["rules"]["balance_deduction_on_failure"]
    assert (deduction["rows_examined"], deduction["backlog"]) == (25, False)
    assert deduction["events_created"] == 25
    assert job["events_created"] == sum(r["events_created"] for r in job["rules"].values())
    assert await _deductions(conn) == sorted((f"B{i}", 1) for i in range(1, 26))

    again = await _json(conn, "SELECT run_critical_detection_batches(60000)")

    assert again["rounds"] == 1 and again["events_created"] == 0
    assert again["rules"]["balance_deduction_on_failure"]["rows_examined"] == 0
    assert await _deductions(conn) == sorted((f"B{i}", 1) for i in range(1, 26))


async def test_beyond_ten_batches_a_rule_runs_again_in_the_same_call(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 2")
    await _claim_batches(conn, 10)
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 45, now - timedelta(minutes=30), "R")

    job = await _json(conn, "SELECT run_critical_detection_batches(60000)")

    assert job["rounds"] == 3 and job["backlog"] is False
    deduction = job["rules"]["balance_deduction_on_failure"]
    assert (deduction["rows_examined"], deduction["batches"]) == (45, 3)
    assert len(await _deductions(conn)) == 45
    # the claim size is the call's own: a plain run in the same session takes one batch
    await _failed(conn, 5, now - timedelta(minutes=20), "P")
    one = await _json(conn, "SELECT run_critical_detection()")
    assert one["rules"]["balance_deduction_on_failure"]["rows_examined"] == 2


async def test_a_zero_budget_runs_one_batch_of_each_rule(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 10")
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 25, now - timedelta(minutes=30), "Z")

    job = await _json(conn, "SELECT run_critical_detection_batches(0)")

    assert job["rounds"] == 1 and job["backlog"] is True
    assert job["rules"]["balance_deduction_on_failure"]["rows_examined"] == 10
    assert "batches" not in job["rules"]["balance_deduction_on_failure"]


async def test_the_medium_job_catches_up_the_spike_rule_in_one_call(
    conn: asyncpg.Connection,
) -> None:
    # The spike rule takes ten batches per run, a hundred in the scheduler's call: with a batch
    # of 1, 150 rows are one plain run of 10, then runs of 100 and 40 in one call.
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 1")
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 150, now - timedelta(minutes=20), "S")

    one = await _json(conn, "SELECT run_medium_detection_batches(0, false)")
    assert one["rules"]["system_failure_spike"]["rows_examined"] == 10
    assert one["backlog"] is True

    rest = await _json(conn, "SELECT run_medium_detection_batches(60000, false)")

    spike = rest["rules"]["system_failure_spike"]
    assert (spike["rows_examined"], spike["batches"], spike["backlog"]) == (140, 2, False)
    assert rest["backlog"] is False and rest["success"] is True
    assert rest["views"]["success"] is True and rest["catch_up"] is False
    events = await conn.fetchval(
        "SELECT count(*) FROM monitoring_events WHERE detection_algorithm = 'system_failure_spike'"
    )
    assert events == 1


async def test_a_medium_catch_up_runs_only_the_rule_with_a_backlog(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 1")
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 15, now - timedelta(minutes=20), "C")
    first = await _json(conn, "SELECT run_medium_detection_batches(0, false)")
    assert first["backlog"] is True
    assert first["rules"]["balance_mismatch_detection"]["backlog"] is False  # the ledger is built
    summarised = await conn.fetchval("SELECT sum(event_count) FROM monitoring_dashboard_summary")
    await conn.fetchval(
        "SELECT create_monitoring_event('race_condition', 'LOW', 'by_hand', 'C-HAND')"
    )

    catch_up = await _json(conn, "SELECT run_medium_detection_batches(0, true)")

    assert catch_up["catch_up"] is True
    assert set(catch_up["rules"]) == {"system_failure_spike"}
    assert catch_up["rules"]["system_failure_spike"]["rows_examined"] == 5
    assert "views" not in catch_up and "alerts" not in catch_up
    assert catch_up["backlog"] is False and catch_up["success"] is True
    # not refreshed: the event written since the full run is not in the summary yet
    assert (
        await conn.fetchval("SELECT sum(event_count) FROM monitoring_dashboard_summary")
        == summarised
    )

    idle = await _json(conn, "SELECT run_medium_detection_batches(0, true)")

    assert idle["rules"] == {} and idle["backlog"] is False


async def test_frequent_claims_keep_few_pending_runs_and_still_close_gaps(
    conn: asyncpg.Connection,
) -> None:
    for _ in range(30):
        await conn.fetchval("SELECT run_critical_detection()")
    runs = await conn.fetchval(
        "SELECT max(jsonb_array_length(pending_runs)) FROM monitoring_detector_watermarks"
    )
    assert runs <= 2

    # With no grace period, every run is recorded and a rolled-back id stops being a gap at
    # the next run, as before.
    await conn.execute("UPDATE monitoring_settings SET late_commit_grace = '0'")
    now = await conn.fetchval("SELECT now()")
    rolled_back = conn.transaction()
    await rolled_back.start()
    await _failed(conn, 1, now, "GONE")
    await rolled_back.rollback()
    await _failed(conn, 1, now, "KEPT")
    for _ in range(3):
        await conn.fetchval("SELECT run_critical_detection()")
    gaps = await conn.fetchval(
        "SELECT pending_gaps::text FROM monitoring_detector_watermarks"
        " WHERE detector_name = 'balance_deduction_on_failure'"
    )
    assert gaps == "{}"
    assert [card for card, _ in await _deductions(conn)] == ["KEPT1"]


async def test_the_claims_size_is_a_parameter_not_a_session_setting(
    conn: asyncpg.Connection,
) -> None:
    """A caller's festmon.claim_batches (the old transport) must not widen a plain call's claim."""
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 10")
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 25, now - timedelta(minutes=30), "P")
    await conn.execute("SET festmon.claim_batches = '10'")

    plain = await _json(conn, "SELECT run_critical_detection()")
    wide = await _json(conn, "SELECT monitoring_run_rule('balance_deduction_on_failure', NULL, 2)")

    deduction = plain["rules"]["balance_deduction_on_failure"]
    assert (deduction["rows_examined"], deduction["backlog"]) == (10, True)
    assert (wide["rows_examined"], wide["backlog"]) == (15, False)


async def test_a_failing_view_refresh_fails_the_medium_job_but_not_its_rules(
    conn: asyncpg.Connection,
) -> None:
    # The alerts and the views are each called in a sub-transaction of their own: one that
    # fails is reported in the job's errors, and the rules' work and the alerts stay.
    await conn.execute("DROP MATERIALIZED VIEW system_health_trend")

    job = await _json(conn, "SELECT run_medium_detection_batches(0, false)")

    assert job["views"]["success"] is False
    assert "system_health_trend" in job["views"]["error"]
    assert job["alerts"]["success"] is True
    assert job["success"] is False
    refresh_error = {"algorithm": "refresh_monitoring_views", "error": job["views"]["error"]}
    assert refresh_error in job["errors"]
    assert all(rule["success"] for rule in job["rules"].values())
