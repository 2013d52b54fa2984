"""The critical job's claim size while it catches up adapts to its statement timeout (V0090).

Ten batches a rule run from the first run took 14.8 s of the 30 s timeout at 10 M log rows
(3 M of them in the lookback): on a server twice as slow that round would be cancelled, and
repeated at the same size for ever. The size now halves after a slow round, doubles back
(up to ten) after a quick full one, and a cancelled run makes the next one claim half.
"""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import pytest

from tests.db.test_detect_batches import _deductions, _failed

BATCH = 5  # detection_batch_size in these tests


async def _stored(conn: asyncpg.Connection) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT batches, xmin::text AS version FROM monitoring_critical_claim"
    )
    assert row is not None
    return row


async def _one_round(conn: asyncpg.Connection) -> int:
    """One scheduler call that ends after its first round (a 1 ms budget): how many rows the
    first rule examined, which is the call's claim size."""
    job = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(1)"))
    assert job["success"] is True, job
    assert job["rounds"] == 1
    examined: int = job["rules"]["balance_deduction_on_failure"]["rows_examined"]
    return examined


@pytest.fixture
async def behind(conn: asyncpg.Connection) -> asyncpg.Connection:
    """400 new rows (80 batches) to catch up, and a statement timeout no round comes near."""
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = $1", BATCH)
    await conn.execute("SET statement_timeout = '10min'")
    now = await conn.fetchval("SELECT now()")
    await _failed(conn, 400, now - timedelta(minutes=30), "C")
    return conn


async def test_a_claim_cut_to_one_batch_doubles_back_while_the_rounds_are_quick(
    behind: asyncpg.Connection,
) -> None:
    conn = behind
    assert (await _stored(conn))["batches"] == 10  # as before V0090
    await conn.execute("UPDATE monitoring_critical_claim SET batches = 1")

    claims = [await _one_round(conn) for _ in range(6)]

    assert claims == [BATCH * b for b in (1, 2, 4, 8, 10, 10)]
    first = await _stored(conn)
    assert first["batches"] == 10
    # caught up: every row examined once, and the stored size is not written again
    while await _one_round(conn):
        pass
    assert len(await _deductions(conn)) == 400
    assert await _one_round(conn) == 0
    assert await _stored(conn) == first


async def test_a_cancelled_run_makes_the_next_one_claim_half_and_not_grow_at_once(
    behind: asyncpg.Connection, db_dsn: str
) -> None:
    conn = behind
    await conn.execute("UPDATE monitoring_critical_claim SET batches = 8")
    assert await _one_round(conn) == 8 * BATCH  # a quick full round: 16 next
    assert (await _stored(conn))["batches"] == 10

    # the next run waits on the first rule's watermark until its statement timeout cancels it
    other = await asyncpg.connect(db_dsn)
    try:
        async with other.transaction():
            await other.execute(
                "SELECT 1 FROM monitoring_detector_watermarks"
                " WHERE detector_name = 'balance_deduction_on_failure' FOR UPDATE"
            )
            await conn.execute("SET statement_timeout = '300ms'")
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.fetchval("SELECT run_critical_detection_batches(1)")
    finally:
        await other.close()
    await conn.execute("SET statement_timeout = '10min'")
    assert (await _stored(conn))["batches"] == 10  # the cancelled run changed nothing

    assert await _one_round(conn) == 5 * BATCH  # half of ten
    assert (await _stored(conn))["batches"] == 5  # quick, but no growth right after a cancel
    assert await _one_round(conn) == 5 * BATCH
    assert (await _stored(conn))["batches"] == 10
    # nothing examined twice or skipped across the cancelled run
    while await _one_round(conn):
        pass
    assert await _deductions(conn) == sorted((f"C{i}", 1) for i in range(1, 401))


@pytest.mark.parametrize(
    ("batches", "round_ms", "full", "may_grow", "expected"),
    [
        (4, 15_001, True, True, 2),  # over half of 30 s: half
        (1, 29_000, True, True, 1),  # never below one batch
        (4, 15_000, True, True, 4),  # between a quarter and half: kept
        (4, 7_500, True, True, 4),
        (4, 7_499, True, True, 8),  # under a quarter, rules still behind: double
        (8, 100, True, True, 10),  # at most ten
        (4, 100, False, True, 4),  # caught up: the size was not what limited the round
        (4, 100, True, False, 4),  # right after a cancelled run: no growth yet
    ],
)
async def test_the_next_claim_size_follows_the_round_time_against_the_timeout(
    conn: asyncpg.Connection,
    batches: int,
    round_ms: int,
    full: bool,
    may_grow: bool,
    expected: int,
) -> None:
    assert (
        await conn.fetchval(
            "SELECT monitoring_critical_next_batches($1, $2, 30000, $3, $4)",
            batches,
            round_ms,
            full,
            may_grow,
        )
        == expected
    )
