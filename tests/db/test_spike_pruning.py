"""system_failure_spike prunes windows it can prove are no spike: the result is unchanged.

The rule used to count every row of the window before the new rows whenever a failure lay in
it: with a failed row or two in a quarter of an hour, every medium job read a quarter hour of
payments. Now a window is dropped, before any count, when its new rows alone or a count that
stops at the number needed show that its failure rate cannot exceed the threshold. These tests
compare the rule with a brute-force count of every window, on traffic where some windows are
spikes, some are dropped by each test, and some need the full count.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

BRUTE_FORCE = """
WITH ends AS (
    SELECT DISTINCT "timestamp" AS ts FROM app_transaction_log
), windows AS (
    SELECT e.ts,
           (SELECT count(*) FROM app_transaction_log AS l
             WHERE l."timestamp" BETWEEN e.ts - s.failure_spike_window AND e.ts) AS total,
           (SELECT count(*) FROM app_transaction_log AS l
             WHERE l."timestamp" BETWEEN e.ts - s.failure_spike_window AND e.ts
               AND l.status = 'failed') AS failed
      FROM ends AS e, monitoring_settings AS s
), spikes AS (
    SELECT w.*, round(100.0 * w.failed / w.total, 2) AS rate
      FROM windows AS w, monitoring_settings AS s
     WHERE w.total > s.failure_spike_min_transactions
       AND 100.0 * w.failed / w.total > s.failure_spike_rate_percent
)
SELECT (SELECT count(*) FROM spikes) AS spike_windows, b.ts, b.total, b.failed, b.rate
  FROM (SELECT * FROM spikes ORDER BY 100.0 * failed / total DESC, ts DESC LIMIT 1) AS b
"""


async def _insert_at(conn: asyncpg.Connection, rows: list[tuple[str, str, datetime]]) -> None:
    """Log rows (card, status, timestamp) of balance-less bar orders."""
    await conn.executemany(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'bar_order', $2, 1.00, NULL, NULL, $3)
        """,
        rows,
    )


async def _insert(conn: asyncpg.Connection, rows: list[tuple[str, timedelta]]) -> None:
    now = await conn.fetchval("SELECT now()")
    await _insert_at(conn, [(f"P{i}", status, now - ago) for i, (status, ago) in enumerate(rows)])


async def _explained(conn: asyncpg.Connection) -> list[str]:
    """From now on, the plan of every statement this session runs (auto_explain, nested)."""
    plans: list[str] = []
    conn.add_log_listener(lambda _c, message: plans.append(str(message.message)))
    await conn.execute(
        "LOAD 'auto_explain';"
        " SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;"
        " SET auto_explain.log_timing = off; SET auto_explain.log_nested_statements = on;"
        " SET auto_explain.log_level = notice; SET client_min_messages = notice"
    )
    return plans


async def _spike(conn: asyncpg.Connection) -> dict[str, Any] | None:
    result = json.loads(await conn.fetchval("SELECT monitoring_run_rule('system_failure_spike')"))
    assert result["success"] is True, result
    row = await conn.fetchrow(
        "SELECT event_data FROM monitoring_events"
        " WHERE detection_algorithm = 'system_failure_spike'"
    )
    return None if row is None else json.loads(row["event_data"], parse_float=Decimal)


def _worst(found: dict[str, Any]) -> tuple[Any, ...]:
    """The rule's event: how many spike windows it saw, and its worst window's counts."""
    return (
        found["spike_windows_seen"],
        found["total_transactions"],
        found["failed_transactions"],
        found["failure_rate_percent"],
    )


def _worst_expected(expected: asyncpg.Record) -> tuple[Any, ...]:
    """The same from the brute-force count."""
    return (expected["spike_windows"], expected["total"], expected["failed"], expected["rate"])


async def _expect(conn: asyncpg.Connection) -> asyncpg.Record | None:
    row = await conn.fetchrow(BRUTE_FORCE)
    return row if row is not None and row["spike_windows"] > 0 else None


async def test_rare_failures_in_dense_traffic_are_no_spike(conn: asyncpg.Connection) -> None:
    # 600 rows over ten minutes, two of them failed: no window comes near 5 %.
    rows = [("completed", timedelta(seconds=s)) for s in range(600)]
    rows[100] = ("failed", rows[100][1])
    rows[450] = ("failed", rows[450][1])
    await conn.execute("UPDATE monitoring_settings SET failure_spike_window = '2 minutes'")
    await _insert(conn, rows)

    assert await _expect(conn) is None
    assert await _spike(conn) is None


async def test_the_worst_window_is_the_brute_force_one_on_mixed_traffic(
    conn: asyncpg.Connection,
) -> None:
    # Sparse and dense stretches, a burst of failures among sparse rows (a spike whose window
    # must be counted in full), lone failures in dense traffic (dropped by the bounds).
    rng = random.Random(7)
    rows: list[tuple[str, timedelta]] = []
    for second in range(900):
        dense = 300 <= second < 700
        for _ in range(rng.randint(1, 4) if dense else int(rng.random() < 0.15)):
            failed = rng.random() < (0.004 if dense else 0.02)
            rows.append(("failed" if failed else "completed", timedelta(seconds=900 - second)))
    for k in range(4):  # the burst, in the sparse stretch
        rows.append(("failed", timedelta(seconds=900 - 150 - k)))
    await conn.execute("UPDATE monitoring_settings SET failure_spike_window = '1 minute'")
    await _insert(conn, rows)

    expected = await _expect(conn)
    found = await _spike(conn)

    assert expected is not None and found is not None
    assert _worst(found) == _worst_expected(expected)
    # jsonb drops trailing zeros of the microseconds: compare the instants, not the strings
    assert datetime.fromisoformat(found["window_end"]) == expected["ts"]


async def test_a_batch_after_one_failure_is_judged_without_pairing_every_window_with_every_other(
    conn: asyncpg.Connection,
) -> None:
    # 3 000 new rows at distinct instants after one failure: every one ends a candidate window.
    # The rule matched each window's start mark to its end mark with a self-join of two CTEs
    # that the planner, estimating one row each, ran as a nested loop: 3 000 x 3 000 pairs
    # compared (at 23 000 new rows after a backlog, 520 million: 80 s, past the medium job's
    # timeout, so the job failed again at every interval). The plan must stay linear: at most
    # a few rows compared and dropped per row, whatever the estimates. A long-running
    # scheduler session runs the rule's statements with generic plans (no array lengths known
    # to the planner): force them, as after the first five runs.
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    rows = [("completed", timedelta(minutes=10, seconds=k)) for k in range(200, 0, -1)]
    rows.append(("failed", timedelta(minutes=10)))
    rows += [("completed", timedelta(milliseconds=100 * k)) for k in range(3_000, 0, -1)]
    await _insert(conn, rows)
    plans = await _explained(conn)

    assert await _spike(conn) is None
    assert await _expect(conn) is None

    removed = [
        int(n) for plan in plans for n in re.findall(r"Rows Removed by Join Filter: (\d+)", plan)
    ]
    assert any("failures AS MATERIALIZED" in plan for plan in plans), "the rule's plan was logged"
    assert max(removed, default=0) <= 10 * len(rows), max(removed)


async def test_the_windows_of_one_run_are_proven_by_one_count(conn: asyncpg.Connection) -> None:
    # A first batch of payments, its last five failed, then a second batch of 300 at their
    # own instants, both within one bucket of the rule's counts (so the buckets prove
    # nothing). Each new window holds the five failures and so needs 100 rows to be proven;
    # its new rows alone prove only the later ones, and the rule used to count the rows of
    # each of the others (99 counts of up to 100 rows). Every one of them contains the first
    # batch: one count proves them all.
    base = await conn.fetchval(
        "SELECT date_bin('15 seconds', now() - interval '15 seconds', timestamptz '2000-01-01')"
    )

    async def pay(rows: list[tuple[str, timedelta]]) -> None:
        await _insert_at(
            conn, [(f"P{i}-{at}", status, base + at) for i, (status, at) in enumerate(rows)]
        )

    await pay(
        [("completed", timedelta(milliseconds=k)) for k in range(200)]
        + [("failed", timedelta(milliseconds=200 + k)) for k in range(5)]
    )
    assert await _spike(conn) is None
    await pay([("completed", timedelta(seconds=1, milliseconds=k)) for k in range(300)])
    plans = await _explained(conn)

    assert await _spike(conn) is None
    assert await _expect(conn) is None

    rule_plans = [plan for plan in plans if "failures AS MATERIALIZED" in plan]
    assert rule_plans, "the rule's plan was logged"
    counts = [
        int(loops)
        for plan in rule_plans
        for loops in re.findall(
            r"Index Scan using idx_app_transaction_log_timestamp on app_transaction_log x(?:_\d+)?"
            r"\s+\(cost=[^)]*\) \(actual rows=[0-9.]+ loops=(\d+)\)",
            plan,
        )
    ]
    assert counts, "the new windows were counted"
    assert sum(counts) == 1, counts


async def test_batch_after_batch_the_rule_finds_what_brute_force_finds(
    conn: asyncpg.Connection,
) -> None:
    # Payments arrive in runs of a few seconds, some runs with bursts of failures; after each
    # run the rule judges the windows ending at its new rows, exactly as a count of every such
    # window does (the windows of a run share counts; that must not change what is found).
    rng = random.Random(11)
    await conn.execute("UPDATE monitoring_settings SET failure_spike_window = '1 minute'")
    start = await conn.fetchval("SELECT now() - interval '10 minutes'")
    at = start
    for run in range(12):
        batch: list[tuple[str, str, datetime]] = []
        burst = run in (4, 9)
        for k in range(rng.randint(5, 60)):
            at += timedelta(milliseconds=rng.randint(1, 900))
            failed = rng.random() < (0.4 if burst else 0.01)
            batch.append((f"B{run}-{k}", "failed" if failed else "completed", at))
        await _insert_at(conn, batch)
        first, last = batch[0][2], batch[-1][2]
        expected = await conn.fetchrow(
            BRUTE_FORCE.replace(
                'SELECT DISTINCT "timestamp" AS ts FROM app_transaction_log',
                'SELECT DISTINCT "timestamp" AS ts FROM app_transaction_log'
                ' WHERE "timestamp" BETWEEN $1 AND $2',
            ),
            first,
            last,
        )
        result = json.loads(
            await conn.fetchval("SELECT monitoring_run_rule('system_failure_spike')")
        )
        assert result["success"] is True, result
        judged = result["events_created"] + result["events_updated"]
        if expected is None or expected["spike_windows"] == 0:
            assert judged == 0, (run, result)
            continue
        assert judged == 1, (run, result)
        found = await _spike(conn)
        assert found is not None
        assert _worst(found) == _worst_expected(expected)
