"""The card ledger writes no WAL (unlogged), and a ledger emptied by a crash is rebuilt."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg


async def _sweep(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('balance_mismatch_detection', 'sweep')")
    )


async def _recharge(conn: asyncpg.Connection, card: str, amount: str, balance: str) -> None:
    now = await conn.fetchval("SELECT now()")
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'stripe_recharge', 'completed', $2::numeric,
                $3::numeric - $2::numeric, $3::numeric, $4)
        """,
        card,
        amount,
        balance,
        now - timedelta(minutes=1),
    )


async def test_the_card_ledger_and_its_state_row_are_unlogged(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT relname::text, relpersistence::text FROM pg_class WHERE relname IN"
        " ('monitoring_card_ledger', 'monitoring_card_ledger_state', 'monitoring_events')"
        " ORDER BY relname"
    )
    assert [(r["relname"], r["relpersistence"]) for r in rows] == [
        ("monitoring_card_ledger", "u"),
        ("monitoring_card_ledger_state", "u"),
        ("monitoring_events", "p"),
    ]


async def test_a_ledger_emptied_by_a_crash_is_rebuilt_and_every_card_compared(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('OK', 20.00), ('BAD', 20.00)")
    await _recharge(conn, "OK", "20.00", "20.00")
    await _recharge(conn, "BAD", "20.00", "20.00")
    built = await _sweep(conn)
    assert (built["success"], built["ledger_rebuilt"], built["events_created"]) == (True, True, 0)
    assert await conn.fetchval("SELECT count(*) FROM monitoring_card_ledger_state") == 1

    # What crash recovery does to unlogged tables: both are empty afterwards, while the
    # (logged) watermark still says the log was folded.
    await conn.execute("TRUNCATE monitoring_card_ledger, monitoring_card_ledger_state")
    await conn.execute("UPDATE table_cards SET amount = 25.00 WHERE id = 'BAD'")

    rebuilt = await _sweep(conn)

    assert (rebuilt["success"], rebuilt["ledger_rebuilt"]) == (True, True)
    assert rebuilt["cards_checked"] == 2
    events = await conn.fetch(
        "SELECT card_id, event_data FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_mismatch_detection'"
    )
    assert [e["card_id"] for e in events] == ["BAD"]
    assert json.loads(events[0]["event_data"])["expected_balance"] == 20.0
    ledger = await conn.fetch(
        "SELECT card_id, completed_rows FROM monitoring_card_ledger ORDER BY card_id"
    )
    assert [(r["card_id"], r["completed_rows"]) for r in ledger] == [("BAD", 1), ("OK", 1)]

    again = await _sweep(conn)

    assert again["ledger_rebuilt"] is False and again["events_created"] == 0
