"""The critical job's balance check writes nothing per payment and stays exact (issue 19).

The critical job used to fold every new log row into the card ledger (a write per paying card
every 2 s) before comparing. Now it settles a card from the new rows' own balances and the
card's table_cards row (pages the payment has just written) and compares only the rest
exactly against the ledger as the medium job left it. These tests pin: no ledger write on the
critical path; the same cards flagged as a brute-force comparison of every log row; a direct
UPDATE without a log row still found by the next sweep.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import log_row, put_card

BRUTE_FORCE = """
WITH s AS (SELECT * FROM monitoring_settings_get()),
counted AS (
    SELECT l.*
      FROM app_transaction_log AS l, s
     WHERE l.status = 'completed'
       AND coalesce(l.edge_function_name, '') <> ALL (s.mirror_edge_function_names)
),
per_card AS (
    SELECT c.card_id,
           (SELECT x.new_balance FROM counted AS x
             WHERE x.card_id = c.card_id AND x.new_balance IS NOT NULL
             ORDER BY x.log_id DESC LIMIT 1) AS last_balance,
           bool_or(c.amount_involved IS NULL
                   OR NOT (c.transaction_type = ANY (s.credit_transaction_types)
                           OR c.transaction_type = ANY (s.debit_transaction_types)))
               AS indeterminate,
           sum(CASE WHEN c.transaction_type = ANY (s.credit_transaction_types)
                        THEN c.amount_involved
                    WHEN c.transaction_type = ANY (s.debit_transaction_types)
                        THEN -c.amount_involved ELSE 0 END) AS signed_sum
      FROM counted AS c, s
     GROUP BY c.card_id
)
SELECT p.card_id
  FROM per_card AS p
  JOIN table_cards AS t ON t.id = p.card_id, s
 WHERE abs(coalesce(t.amount, 0)
           - CASE WHEN p.last_balance IS NOT NULL THEN p.last_balance
                  WHEN NOT p.indeterminate THEN p.signed_sum END) >= s.discrepancy_threshold
 ORDER BY p.card_id
"""


async def _job(conn: asyncpg.Connection, call: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await conn.fetchval(f"SELECT {call}"))
    assert result["success"] is True, result
    return result


async def _flagged(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT card_id FROM monitoring_events WHERE detection_algorithm ="
        " 'balance_mismatch_detection' AND status IN ('OPEN', 'INVESTIGATING') ORDER BY card_id"
    )
    return [r["card_id"] for r in rows]


async def _ledger(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch("SELECT * FROM monitoring_card_ledger ORDER BY card_id")
    return [tuple(r) for r in rows]


async def test_the_critical_job_writes_nothing_to_the_card_ledger(
    conn: asyncpg.Connection,
) -> None:
    await put_card(conn, "C1", "50.00")
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0", new="50.00")
    await _job(conn, "run_critical_detection()")  # builds the ledger (the first run folds)
    await _job(conn, "run_medium_detection()")
    ledger = await _ledger(conn)
    folded = await conn.fetchval(
        "SELECT last_log_id FROM monitoring_detector_watermarks WHERE detector_name = 'card_ledger'"
    )
    for i in range(3):
        await log_row(
            conn,
            "C1",
            kind="bar_order",
            amount="5.00",
            previous=f"{50 - 5 * i}",
            new=f"{45 - 5 * i}",
        )
    await put_card(conn, "C1", "35.00")

    critical = await _job(conn, "run_critical_detection()")

    assert critical["rules"]["balance_mismatch_detection"]["rows_examined"] == 3
    assert critical["rules"]["balance_mismatch_detection"]["cards_checked"] == 0  # settled
    assert await _ledger(conn) == ledger
    assert (
        await conn.fetchval(
            "SELECT last_log_id FROM monitoring_detector_watermarks"
            " WHERE detector_name = 'card_ledger'"
        )
        == folded
    )
    assert await _flagged(conn) == []


async def test_the_critical_job_flags_what_a_brute_force_comparison_flags(
    conn: asyncpg.Connection,
) -> None:
    rng = random.Random(19)
    mirror = (
        await conn.fetchval("SELECT mirror_edge_function_names FROM monitoring_settings_get()")
    )[0]
    balances: dict[str, Decimal] = {}
    skewed: set[str] = set()  # wrong once, left alone (events are not resolved by the rule)
    for c in range(30):
        card = f"K{c:02d}"
        balances[card] = Decimal("100.00")
        await put_card(conn, card, "100.00")
        await log_row(
            conn, card, kind="stripe_recharge", amount="100.00", previous="0", new="100.00"
        )
    await _job(conn, "run_critical_detection()")
    await _job(conn, "run_medium_detection()")
    assert await _flagged(conn) == await conn.fetch(BRUTE_FORCE) == []

    for _round in range(4):
        for card in rng.sample(sorted(set(balances) - skewed), 6):
            kind = rng.choice(["pay", "pay", "pay", "failed", "mirror", "nobalance", "skew"])
            old = balances[card]
            if kind == "failed":
                await log_row(conn, card, status="failed", amount="3.00")
                continue
            if kind == "mirror":
                await log_row(conn, card, amount="3.00", edge_function=mirror)
                continue
            if kind == "nobalance":  # a completed row without balances: the signed sum is moot
                await log_row(conn, card, amount="2.00")
                continue
            new = old - Decimal("4.00")
            await log_row(conn, card, amount="4.00", previous=str(old), new=str(new))
            balances[card] = new
            if kind == "skew":
                skewed.add(card)
            # "skew": the card is written wrong (a lost update); otherwise it follows the log
            await put_card(conn, card, str(new + (Decimal("0.01") if kind == "skew" else 0)))
        await _job(conn, "run_critical_detection()")
        expected = [r["card_id"] for r in await conn.fetch(BRUTE_FORCE)]
        # every wrong card that had a new row is flagged by the critical job alone
        assert await _flagged(conn) == expected
        await _job(conn, "run_medium_detection()")
        assert await _flagged(conn) == expected


async def test_a_direct_update_without_a_log_row_is_found_by_the_next_sweep(
    conn: asyncpg.Connection,
) -> None:
    await put_card(conn, "C1", "50.00")
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0", new="50.00")
    await _job(conn, "run_critical_detection()")
    await _job(conn, "run_medium_detection()")
    await log_row(conn, "C1", kind="bar_order", amount="5.00", previous="50.00", new="45.00")
    await put_card(conn, "C1", "45.00")
    await _job(conn, "run_critical_detection()")
    await conn.execute("UPDATE table_cards SET amount = 1000.00 WHERE id = 'C1'")

    await _job(conn, "run_critical_detection()")  # no new row: the critical job cannot know
    assert await _flagged(conn) == []
    await _job(conn, "run_medium_detection()")

    assert await _flagged(conn) == ["C1"]


async def test_the_critical_job_folds_when_the_ledger_lags_too_far(
    conn: asyncpg.Connection,
) -> None:
    # With the SPEC's 120 s medium interval the ledger could lag two minutes of payments; the
    # chain-break rule reads the rows above the fold every critical run. Beyond 20 000 ids of
    # lag the critical job folds itself (exact as before the change).
    await put_card(conn, "C1", "50.00")
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0", new="50.00")
    await _job(conn, "run_critical_detection()")  # builds the ledger
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        SELECT 'C1', 'stripe_recharge', 'completed', 1.00, 49.00 + i, 50.00 + i, now()
          FROM generate_series(1, 20001) AS i
        """
    )
    await put_card(conn, "C1", "20051.00")
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 100000")

    critical = await _job(conn, "run_critical_detection()")

    assert critical["rules"]["balance_mismatch_detection"].get("ledger_rebuilt") is False
    folded = await conn.fetchval(
        "SELECT last_log_id FROM monitoring_detector_watermarks WHERE detector_name = 'card_ledger'"
    )
    assert folded == await conn.fetchval("SELECT max(log_id) FROM app_transaction_log")
    assert await _flagged(conn) == []
