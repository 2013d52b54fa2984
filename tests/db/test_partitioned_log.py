"""The detection rules on a time-partitioned app_transaction_log (docs/SCALING.md)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import asyncpg

# The log as a large festival would partition it: by month on "timestamp". A partitioned
# table's unique keys must hold the partition key, so log_id is unique with "timestamp".
PARTITIONED_LOG = """
ALTER TABLE app_transaction_log RENAME TO app_transaction_log_plain;
CREATE TABLE app_transaction_log (
    log_id                    bigint NOT NULL
        DEFAULT nextval('app_transaction_log_log_id_seq'),
    transaction_id            uuid DEFAULT gen_random_uuid(),
    correlation_id            uuid,
    card_id                   text NOT NULL,
    transaction_type          text NOT NULL,
    status                    text NOT NULL,
    amount_involved           numeric(10,2),
    previous_balance          numeric(10,2),
    new_balance               numeric(10,2),
    details                   jsonb,
    edge_function_name        text,
    edge_function_request_id  text,
    client_request_id         text,
    "timestamp"               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
ALTER SEQUENCE app_transaction_log_log_id_seq OWNED BY app_transaction_log.log_id;
DROP TABLE app_transaction_log_plain;
CREATE INDEX ON app_transaction_log (card_id, "timestamp", log_id);
CREATE INDEX ON app_transaction_log (card_id, log_id);
CREATE INDEX ON app_transaction_log ("timestamp");
CREATE INDEX ON app_transaction_log ("timestamp") WHERE status = 'failed';
"""


async def _partition(conn: asyncpg.Connection, now: datetime) -> None:
    """Two partitions split ten hours ago, so the anomalies fall on both sides of a boundary."""
    await conn.execute(PARTITIONED_LOG)
    bounds = [now - timedelta(days=3), now - timedelta(hours=10), now + timedelta(days=1)]
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        await conn.execute(
            f"CREATE TABLE app_transaction_log_{number} PARTITION OF app_transaction_log"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


async def _anomalies(conn: asyncpg.Connection, now: datetime) -> None:
    """One of each per-row anomaly over two partitions, inserted in time order."""
    rows = [
        # a failed payment that still debited the card (yesterday's partition)
        ("C-FAIL", "bar_order", "failed", "10", "50", "40", now - timedelta(hours=20)),
        # three failures in a row on one card (today)
        *[
            ("C-BURST", "bar_order", "failed", "5", "20", "20", now - timedelta(seconds=s))
            for s in (30, 20, 10)
        ],
        # a broken balance chain: the second row does not start where the first ended
        ("C-CHAIN", "recharge", "completed", "20", "0", "20", now - timedelta(minutes=5)),
        ("C-CHAIN", "bar_order", "completed", "5", "30", "25", now - timedelta(minutes=4)),
        # two payments 0.3 s apart on one card: a race
        ("C-RACE", "bar_order", "completed", "5", "50", "45", now - timedelta(seconds=3)),
        (
            "C-RACE",
            "bar_order",
            "completed",
            "5",
            "45",
            "40",
            now - timedelta(seconds=2, milliseconds=700),
        ),
    ]
    for card, balance in {("C-FAIL", 40), ("C-BURST", 20), ("C-CHAIN", 25), ("C-RACE", 40)}:
        await conn.execute("INSERT INTO table_cards (id, amount) VALUES ($1, $2)", card, balance)
    await conn.executemany(
        "INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,"
        ' previous_balance, new_balance, "timestamp")'
        " VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7)",
        sorted(rows, key=lambda row: row[-1]),
    )


async def _detected(conn: asyncpg.Connection) -> list[tuple[str, str | None]]:
    await conn.execute("SELECT run_monitoring_detection_cycle()")
    records = await conn.fetch(
        "SELECT detection_algorithm, card_id FROM monitoring_events"
        " WHERE detection_algorithm <> 'system_initialization'"
        " ORDER BY detection_algorithm, card_id"
    )
    return [(r["detection_algorithm"], r["card_id"]) for r in records]


async def test_every_rule_finds_the_same_events_on_a_partitioned_log_as_on_a_plain_one(
    two_databases: tuple[str, str],
) -> None:
    plain = await asyncpg.connect(two_databases[0])
    partitioned = await asyncpg.connect(two_databases[1])
    try:
        await _compare(plain, partitioned)
    finally:
        await plain.close()
        await partitioned.close()


async def _compare(plain: asyncpg.Connection, partitioned: asyncpg.Connection) -> None:
    now = await plain.fetchval("SELECT now()")
    await _partition(partitioned, now)
    await _anomalies(plain, now)
    await _anomalies(partitioned, now)

    expected = await _detected(plain)
    found = await _detected(partitioned)

    assert found == expected
    assert {algorithm for algorithm, _ in expected} >= {
        "balance_deduction_on_failure",
        "consecutive_failures",
        "balance_chain_break",
        "concurrent_transaction_detection",
    }
    rows_per_partition = await partitioned.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) FROM app_transaction_log GROUP BY 1"
    )
    assert len(rows_per_partition) == 2 and all(r["count"] > 0 for r in rows_per_partition)
