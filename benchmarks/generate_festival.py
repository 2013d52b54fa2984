"""Load a large, consistent festival history fast (set-based SQL) plus a known set of anomalies.

Usage:
    python benchmarks/generate_festival.py --dsn postgresql://... --cards 100000 \
        --log-rows 1000000 --scans 1000000 --anomalies 5

The database must have both migration sets applied (`festmon db migrate --with-payment-schema`).
Every card's balance chain is consistent (each row's previous_balance is the new_balance of the
card's previous row, and the card's amount is its last new_balance); same-card rows are hours
apart and same-card scans minutes apart, so normal history triggers no rule. The anomalies are
recorded in `benchmark_ground_truth` (rule, card_id) so a run can check that every one is found
and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

GROUND_TRUTH_DDL = """
CREATE TABLE IF NOT EXISTS benchmark_ground_truth (
    rule     text NOT NULL,
    card_id  text,
    PRIMARY KEY (rule, card_id)
);
TRUNCATE benchmark_ground_truth;
"""

# k rows per card: row 0 is a 100.00 top-up, every 8th row a 50.00 top-up, the rest bar orders
# of 1.00-9.99; the running sum gives each row's new_balance.
LOAD_LOG = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 previous_balance, new_balance, client_request_id,
                                 edge_function_name, details, "timestamp")
SELECT card_id, transaction_type, 'completed', amount,
       balance - delta, balance, 'gen-' || c || '-' || j,
       CASE WHEN delta > 0 THEN 'process-standard-recharge' ELSE 'process-bar-order' END,
       '{"generated": true}'::jsonb,
       now() - interval '3 days' + (j * interval '3 days' / $2) + (c % 997) * interval '1 second'
           AS ts
FROM (
    SELECT c, j, card_id, transaction_type, amount, delta,
           sum(delta) OVER (PARTITION BY c ORDER BY j) AS balance
    FROM (
        SELECT c, j, 'card-' || lpad(c::text, 7, '0') AS card_id,
               CASE WHEN j = 0 THEN 'stripe_recharge'
                    WHEN j % 8 = 0 THEN 'standard_recharge'
                    ELSE 'bar_order' END AS transaction_type,
               CASE WHEN j = 0 THEN 100.00 WHEN j % 8 = 0 THEN 50.00
                    ELSE ((c * 7 + j * 13) % 900 + 100) / 100.0 END::numeric(10,2) AS amount,
               CASE WHEN j = 0 THEN 100.00 WHEN j % 8 = 0 THEN 50.00
                    ELSE -((c * 7 + j * 13) % 900 + 100) / 100.0 END::numeric(10,2) AS delta
        FROM generate_series(1, $1) AS c, generate_series(0, $2 - 1) AS j
    ) rows
) chained
ORDER BY ts
"""

LOAD_CARDS = """
INSERT INTO table_cards (id, amount, created_at, updated_at)
SELECT DISTINCT ON (card_id) card_id, new_balance, now() - interval '3 days', "timestamp"
FROM app_transaction_log
ORDER BY card_id, log_id DESC
"""

LOAD_SCANS = """
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status, processing_duration_ms,
                          device_identifier, operation_id)
SELECT 'card-' || lpad(c::text, 7, '0'),
       now() - interval '3 days' + (j * interval '3 days' / $2) + (c % 997) * interval '1 second',
       'success', 80 + (c * 31 + j * 17) % 400, 'bar-' || (c % 10), 'gen-' || c || '-' || j
FROM generate_series(1, $1) AS c, generate_series(0, $2 - 1) AS j
"""


async def _inject(conn: asyncpg.Connection, cards: int, count: int) -> None:
    """Write `count` anomalies of each per-card rule on distinct cards, recent enough to matter.

    The anomalies are the only rows of the last 15 minutes, 4 of every 7 failed: with two or
    more sets that is also a system-wide failure spike, recorded as such.
    """
    step = max(1, cards // (7 * count + 1))
    card = iter(range(step, cards + 1, step))

    def next_card() -> str:
        return "card-" + str(next(card)).rjust(7, "0")

    for _ in range(count):
        # balance_deduction_on_failure: a failed payment that still debited (row and card).
        c = next_card()
        await conn.execute(
            """
            WITH cur AS (SELECT amount FROM table_cards WHERE id = $1)
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                previous_balance, new_balance, client_request_id, "timestamp")
            SELECT $1, 'bar_order', 'failed', 4.50, amount, amount - 4.50, 'anomaly-ded-' || $1,
                   now() - interval '2 minutes' FROM cur
            """,
            c,
        )
        await conn.execute("UPDATE table_cards SET amount = amount - 4.50 WHERE id = $1", c)
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('balance_deduction_on_failure', $1), "
            "('balance_mismatch_detection', $1)",
            c,
        )
        # consecutive_failures: three failed attempts (balances unchanged) within 10 minutes.
        c = next_card()
        await conn.execute(
            """
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                previous_balance, new_balance, client_request_id, "timestamp")
            SELECT $1, 'bar_order', 'failed', 500.00, t.amount, t.amount, 'anomaly-cf-' || $1 || i,
                   now() - (i * interval '1 minute')
            FROM table_cards t, generate_series(1, 3) i WHERE t.id = $1
            """,
            c,
        )
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('consecutive_failures', $1)", c
        )
        # balance_mismatch_detection: the balance changed behind the ledger's back.
        c = next_card()
        await conn.execute("UPDATE table_cards SET amount = amount + 0.01 WHERE id = $1", c)
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('balance_mismatch_detection', $1)", c
        )
        # negative_balance_detection (+ the mismatch it implies).
        c = next_card()
        await conn.execute("UPDATE table_cards SET amount = -3.00 WHERE id = $1", c)
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('negative_balance_detection', $1), "
            "('balance_mismatch_detection', $1)",
            c,
        )
        # balance_chain_break: a lost update — a completed row computed from a stale balance.
        c = next_card()
        await conn.execute(
            """
            WITH cur AS (SELECT amount FROM table_cards WHERE id = $1)
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                previous_balance, new_balance, client_request_id, "timestamp")
            SELECT $1, 'bar_order', 'completed', 2.00, amount + 5.00, amount + 3.00,
                   'anomaly-chain-' || $1, now() - interval '90 seconds' FROM cur
            """,
            c,
        )
        await conn.execute(
            "UPDATE table_cards t SET amount = l.new_balance FROM app_transaction_log l "
            "WHERE t.id = $1 AND l.client_request_id = 'anomaly-chain-' || $1",
            c,
        )
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('balance_chain_break', $1)", c
        )
        # temporal_duplicate_detection: the wristband read twice 1.2 s apart.
        c = next_card()
        await conn.execute(
            """
            INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status,
                                      processing_duration_ms, device_identifier)
            VALUES ($1, now() - interval '60 seconds', 'success', 120, 'bar-1'),
                   ($1, now() - interval '58.8 seconds', 'success', 130, 'bar-1')
            """,
            c,
        )
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('temporal_duplicate_detection', $1)", c
        )
        # concurrent_transaction_detection: two payments 0.8 s apart, consistent chain.
        c = next_card()
        await conn.execute(
            """
            WITH cur AS (SELECT amount FROM table_cards WHERE id = $1)
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                previous_balance, new_balance, client_request_id, "timestamp")
            SELECT $1, 'bar_order', 'completed', 1.00, amount, amount - 1.00,
                   'anomaly-race-a-' || $1, now() - interval '45 seconds' FROM cur
            UNION ALL
            SELECT $1, 'bar_order', 'completed', 1.00, amount - 1.00, amount - 2.00,
                   'anomaly-race-b-' || $1, now() - interval '44.2 seconds' FROM cur
            """,
            c,
        )
        await conn.execute("UPDATE table_cards SET amount = amount - 2.00 WHERE id = $1", c)
        await conn.execute(
            "INSERT INTO benchmark_ground_truth VALUES ('concurrent_transaction_detection', $1)",
            c,
        )


async def generate(dsn: str, cards: int, log_rows: int, scans: int, anomalies: int) -> None:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        await conn.execute("SET statement_timeout = 0")
        await conn.execute(GROUND_TRUTH_DDL)
        per_card = max(1, log_rows // cards)
        scans_per_card = max(1, scans // cards)
        started = time.perf_counter()
        await conn.execute(LOAD_LOG, cards, per_card)
        print(f"log: {cards * per_card} rows in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        await conn.execute(LOAD_CARDS)
        print(f"cards: {cards} in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        await conn.execute(LOAD_SCANS, cards, scans_per_card)
        print(f"scans: {cards * scans_per_card} rows in {time.perf_counter() - started:.1f} s")
        await _inject(conn, cards, anomalies)
        if anomalies >= 2:
            await conn.execute(
                "INSERT INTO benchmark_ground_truth VALUES ('system_failure_spike', '')"
            )
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE app_transaction_log")
        await conn.execute("VACUUM ANALYZE table_cards")
        await conn.execute("VACUUM ANALYZE nfc_scan_log")
        print(f"vacuum analyze in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--scans", type=int, default=1_000_000)
    parser.add_argument("--anomalies", type=int, default=5, help="instances of each per-card rule")
    args = parser.parse_args()
    asyncio.run(generate(args.dsn, args.cards, args.log_rows, args.scans, args.anomalies))


if __name__ == "__main__":
    main()
