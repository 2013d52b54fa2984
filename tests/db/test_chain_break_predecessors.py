"""Where balance_chain_break finds a new row's predecessor without reading the card's history.

The rule used to step back on the (card_id, log_id) index and read the previous row of every
new row: at 10 M log rows a random read of a cold page per payment, the costliest part of
the critical job. Now the predecessor of a card's first new row comes from the card ledger
(the card's latest folded balance row, plus the rows the ledger could not see yet), and that
of the next new rows of the card from the batch itself; the index step remains for late rows
and whenever the ledger cannot vouch for the row. These tests pin each source.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import put_card


async def _log(
    conn: asyncpg.Connection, card: str, kind: str, amount: str, previous: str, new: str
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, $2, 'completed', $3::numeric, $4::numeric, $5::numeric, now())
        RETURNING log_id
        """,
        card,
        kind,
        amount,
        previous,
        new,
    )


async def _critical(conn: asyncpg.Connection) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert result["success"] is True, result
    return result


async def _breaks(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT event_data FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_chain_break' ORDER BY event_id"
    )
    return [json.loads(r["event_data"], parse_float=Decimal) for r in rows]


async def test_a_cards_first_new_row_is_judged_against_its_card_ledger_row(
    conn: asyncpg.Connection,
) -> None:
    await put_card(conn, "C1", "50.00")
    recharge = await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00")
    await _critical(conn)  # judges the recharge, then folds it into the card ledger
    # White box: the ledger, not the log, must be what the next row is compared with.
    await conn.execute(
        "UPDATE monitoring_card_ledger SET last_balance = 49.00 WHERE card_id = 'C1'"
    )
    order = await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00")

    await _critical(conn)

    [data] = await _breaks(conn)
    assert (data["log_id"], data["preceding_log_id"]) == (order, recharge)
    assert data["preceding_new_balance"] == Decimal("49.00")
    assert data["break_kinds"] == ["chain_gap"]


async def test_breaks_are_found_from_the_ledger_and_within_the_batch(
    conn: asyncpg.Connection,
) -> None:
    await put_card(conn, "C1", "50.00")
    await put_card(conn, "C2", "30.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00")
    c2_recharge = await _log(conn, "C2", "stripe_recharge", "30.00", "0.00", "30.00")
    await _critical(conn)
    assert await _breaks(conn) == []

    # C1: a consistent order, then one computed from the stale balance (a lost update, within
    # the batch). C2: an order that ignores the folded recharge (against the ledger).
    first = await _log(conn, "C1", "bar_order", "10.00", "50.00", "40.00")
    lost = await _log(conn, "C1", "bar_order", "5.00", "50.00", "45.00")
    stale = await _log(conn, "C2", "bar_order", "4.00", "20.00", "16.00")
    await _critical(conn)

    found = {d["log_id"]: d for d in await _breaks(conn)}
    assert set(found) == {lost, stale}
    assert (found[lost]["preceding_log_id"], found[lost]["chain_gap"]) == (first, Decimal("10.00"))
    assert (found[stale]["preceding_log_id"], found[stale]["chain_gap"]) == (
        c2_recharge,
        Decimal("-10.00"),
    )


async def test_a_row_the_ledger_could_not_see_when_it_folded_is_still_the_predecessor(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    await put_card(conn, "C1", "50.00")
    await put_card(conn, "C2", "30.00")
    await _log(conn, "C1", "stripe_recharge", "50.00", "0.00", "50.00")
    other = await asyncpg.connect(db_dsn)
    try:
        tx = other.transaction()
        await tx.start()
        # Open while the next job runs: its id becomes a gap of the rule and of the ledger.
        await _log(other, "C1", "bar_order", "10.00", "50.00", "40.00")
        await _log(conn, "C2", "stripe_recharge", "30.00", "0.00", "30.00")
        await _critical(conn)
        await tx.commit()
    finally:
        await other.close()
    # Follows the late order correctly: its predecessor is that order, which the ledger has
    # not folded (it was invisible then) but which is visible now.
    after = await _log(conn, "C1", "bar_order", "5.00", "40.00", "35.00")

    result = await _critical(conn)

    assert result["rules"]["balance_chain_break"]["late_rows"] == 1
    assert await _breaks(conn) == []
    ledger = await conn.fetchrow(
        "SELECT last_balance_log_id, last_balance FROM monitoring_card_ledger WHERE card_id = 'C1'"
    )
    assert (ledger["last_balance_log_id"], ledger["last_balance"]) == (after, Decimal("35.00"))
