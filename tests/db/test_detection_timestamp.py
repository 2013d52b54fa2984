"""An event is stamped when a rule found it, not when the job's transaction began.

Found by the multi-instance soak (benchmarks/soak.py): the scheduler's critical call catches up
every batch in one transaction (run_critical_detection_batches), which under load lasted 5.9 s.
A racing payment written 1-6 s into that call was detected by it, but its event took the
transaction's start as detection_timestamp (the column's DEFAULT now()): detected *before* the
payment existed. The simulator's report then counted it as a false event and the anomaly as
missed; the dashboard shows a wrong age, and its bell ignores an event "older" than its start.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg


async def _pay(conn: asyncpg.Connection, card: str, request: str, ago_ms: int) -> None:
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         "timestamp", client_request_id)
        VALUES ($1, 'bar_order', 'completed', 5.00,
                clock_timestamp() - make_interval(secs => $3::double precision / 1000), $2)
        """,
        card,
        request,
        ago_ms,
    )


async def test_an_event_found_late_in_a_long_job_is_stamped_when_it_was_found(
    db_dsn: str,
) -> None:
    job = await asyncpg.connect(db_dsn)
    till = await asyncpg.connect(db_dsn)
    try:
        async with job.transaction():  # a batched job call: one transaction, several statements
            began = await job.fetchval("SELECT now()")
            await job.fetchval("SELECT pg_sleep(0.2)")
            # Meanwhile a till charges a card twice within the race window (committed).
            paid = await till.fetchval("SELECT clock_timestamp()")
            await _pay(till, "RACE-1", "first", 600)
            await _pay(till, "RACE-1", "second", 100)
            # A later statement of the same call sees the rows (READ COMMITTED) and reports them.
            await job.fetchval("SELECT run_critical_detection()")
        event = await job.fetchrow(
            "SELECT detection_timestamp, last_seen_at FROM monitoring_events"
            " WHERE detection_algorithm = 'concurrent_transaction_detection'"
        )
    finally:
        await job.close()
        await till.close()

    assert event is not None, "the race was not detected"
    assert paid - began >= timedelta(seconds=0.2)
    assert event["detection_timestamp"] >= paid, (
        f"stamped {event['detection_timestamp']}, before the payments ({paid})"
    )
    assert event["last_seen_at"] >= event["detection_timestamp"]
