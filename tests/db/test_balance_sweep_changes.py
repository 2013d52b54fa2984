"""The balance sweep compares only the cards that may have changed since the previous sweep.

A full sweep joined every card with the card ledger every 30 s (1.5-4 s at 1 M cards). Now
the sweep compares every card only on its first run, after a ledger build, after a settings
change and at least hourly; otherwise the cards whose table_cards row was written by a
transaction not older than the previous sweep's snapshot (V0005, docs/DBA.md). These tests pin
what must still be caught: a direct UPDATE without a log row, an UPDATE that commits after the
previous sweep began (in a subtransaction too), a new card, a settings change.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import put_card


async def _recharge(conn: asyncpg.Connection, card: str, amount: str) -> None:
    await put_card(conn, card, amount)
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'stripe_recharge', 'completed', $2::numeric, 0, $2::numeric, now())
        """,
        card,
        amount,
    )


async def _sweep(conn: asyncpg.Connection) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('balance_mismatch_detection', 'sweep')"),
        parse_float=Decimal,
    )
    assert result["success"] is True, result
    return result


async def _flagged(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT card_id FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_mismatch_detection' ORDER BY card_id"
    )
    return [r["card_id"] for r in rows]


async def _three_consistent_cards(conn: asyncpg.Connection) -> None:
    for card, amount in (("C1", "10.00"), ("C2", "20.00"), ("C3", "30.00")):
        await _recharge(conn, card, amount)


async def test_after_a_full_sweep_only_changed_cards_are_compared(conn: asyncpg.Connection) -> None:
    await _three_consistent_cards(conn)

    first = await _sweep(conn)
    quiet = await _sweep(conn)
    # A direct UPDATE of the balance, without any log row: only the next sweep can see it.
    await conn.execute("UPDATE table_cards SET amount = 25.00 WHERE id = 'C2'")
    changed = await _sweep(conn)

    assert first["cards_checked"] == 3
    assert quiet["cards_checked"] == 0
    assert changed["cards_checked"] == 1
    assert changed["events_created"] == 1
    assert await _flagged(conn) == ["C2"]


async def test_an_update_committed_after_the_previous_sweep_began_is_compared_next_time(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    await _three_consistent_cards(conn)
    await _sweep(conn)
    other = await asyncpg.connect(db_dsn)
    try:
        # Open while the next sweep runs, and written in a subtransaction: its xid is not the
        # one a snapshot lists as running, which is why the sweep uses the xid range.
        tx = other.transaction()
        await tx.start()
        await other.execute("SAVEPOINT s")
        await other.execute("UPDATE table_cards SET amount = 31.00 WHERE id = 'C3'")
        await other.execute("RELEASE SAVEPOINT s")
        during = await _sweep(conn)
        await tx.commit()
    finally:
        await other.close()
    after = await _sweep(conn)

    assert during["events_created"] == 0  # not committed yet: C3 still holds 30.00
    assert after["events_created"] == 1
    assert await _flagged(conn) == ["C3"]


async def test_a_new_card_and_an_active_event_are_compared_by_every_sweep(
    conn: asyncpg.Connection,
) -> None:
    await _three_consistent_cards(conn)
    await conn.execute("UPDATE table_cards SET amount = 11.00 WHERE id = 'C1'")
    await _sweep(conn)  # full: flags C1
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ('C4', 'stripe_recharge', 'completed', 5, 0, 5, now())
        """
    )
    await put_card(conn, "C4", "6.00")

    second = await _sweep(conn)

    # C4 (new, and its log row folded by this sweep) and C1 (active event) were compared.
    assert second["cards_checked"] == 2
    assert (second["events_created"], second["events_updated"]) == (1, 1)
    assert await _flagged(conn) == ["C1", "C4"]


async def test_a_settings_change_makes_the_next_sweep_compare_every_card(
    conn: asyncpg.Connection,
) -> None:
    await _three_consistent_cards(conn)
    await _sweep(conn)
    assert (await _sweep(conn))["cards_checked"] == 0

    await conn.execute("UPDATE monitoring_settings SET discrepancy_threshold = 0.02")
    after = await _sweep(conn)

    assert after["cards_checked"] == 3


async def test_a_rebuilt_ledger_makes_the_next_sweep_compare_every_card(
    conn: asyncpg.Connection,
) -> None:
    await _three_consistent_cards(conn)
    await _sweep(conn)
    assert (await _sweep(conn))["cards_checked"] == 0

    await conn.execute("SELECT rebuild_monitoring_card_ledger()")
    after = await _sweep(conn)

    assert after["cards_checked"] == 3
