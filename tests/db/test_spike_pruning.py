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


async def _insert(conn: asyncpg.Connection, rows: list[tuple[str, timedelta]]) -> None:
    now = await conn.fetchval("SELECT now()")
    await conn.executemany(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'bar_order', $2, 1.00, NULL, NULL, $3)
        """,
        [(f"P{i}", status, now - ago) for i, (status, ago) in enumerate(rows)],
    )


async def _spike(conn: asyncpg.Connection) -> dict[str, Any] | None:
    result = json.loads(await conn.fetchval("SELECT monitoring_run_rule('system_failure_spike')"))
    assert result["success"] is True, result
    row = await conn.fetchrow(
        "SELECT event_data FROM monitoring_events"
        " WHERE detection_algorithm = 'system_failure_spike'"
    )
    return None if row is None else json.loads(row["event_data"], parse_float=Decimal)


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
    assert (
        found["spike_windows_seen"],
        found["total_transactions"],
        found["failed_transactions"],
        found["failure_rate_percent"],
    ) == (expected["spike_windows"], expected["total"], expected["failed"], expected["rate"])
    # jsonb drops trailing zeros of the microseconds: compare the instants, not the strings
    assert datetime.fromisoformat(found["window_end"]) == expected["ts"]
