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

from tests.db.payment_rows import log_row, put_card


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
    recharge = await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00"
    )
    await _critical(conn)  # judges the recharge, then folds it into the card ledger
    # White box: the ledger, not the log, must be what the next row is compared with.
    await conn.execute(
        "UPDATE monitoring_card_ledger SET last_balance = 49.00 WHERE card_id = 'C1'"
    )
    order = await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00"
    )

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
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00")
    c2_recharge = await log_row(
        conn, "C2", kind="stripe_recharge", amount="30.00", previous="0.00", new="30.00"
    )
    await _critical(conn)
    assert await _breaks(conn) == []

    # C1: a consistent order, then one computed from the stale balance (a lost update, within
    # the batch). C2: an order that ignores the folded recharge (against the ledger).
    first = await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00"
    )
    lost = await log_row(conn, "C1", kind="bar_order", amount="5.00", previous="50.00", new="45.00")
    stale = await log_row(
        conn, "C2", kind="bar_order", amount="4.00", previous="20.00", new="16.00"
    )
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
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00")
    other = await asyncpg.connect(db_dsn)
    try:
        tx = other.transaction()
        await tx.start()
        # Open while the next job runs: its id becomes a gap of the rule and of the ledger.
        await log_row(other, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00")
        await log_row(
            conn, "C2", kind="stripe_recharge", amount="30.00", previous="0.00", new="30.00"
        )
        await _critical(conn)
        await tx.commit()
    finally:
        await other.close()
    # Follows the late order correctly: its predecessor is that order, which the ledger has
    # not folded (it was invisible then) but which is visible now.
    after = await log_row(
        conn, "C1", kind="bar_order", amount="5.00", previous="40.00", new="35.00"
    )

    result = await _critical(conn)

    assert result["rules"]["balance_chain_break"]["late_rows"] == 1
    assert await _breaks(conn) == []
    # The fold is the medium job's (issue 19: no ledger write on the critical path).
    await conn.fetchval("SELECT run_medium_detection()")
    ledger = await conn.fetchrow(
        "SELECT last_balance_log_id, last_balance FROM monitoring_card_ledger WHERE card_id = 'C1'"
    )
    assert (ledger["last_balance_log_id"], ledger["last_balance"]) == (after, Decimal("35.00"))


async def test_the_ledger_still_vouches_while_the_medium_job_has_not_folded_the_latest_rows(
    conn: asyncpg.Connection,
) -> None:
    # The critical job no longer folds (issue 19): the ledger lags by up to a medium interval.
    # A card without rows above the fold is still judged against its ledger row (white box:
    # the tampered ledger value is what it is compared with), and one with such rows against
    # the latest of them (the ledger's value is then ignored).
    await put_card(conn, "C1", "50.00")
    await put_card(conn, "C2", "50.00")
    c1_recharge = await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00"
    )
    await log_row(conn, "C2", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00")
    await _critical(conn)  # builds the ledger (the first run folds)
    await log_row(conn, "C2", kind="bar_order", amount="10.00", previous="50.00", new="40.00")
    await _critical(conn)  # judges it; the ledger stays behind
    await conn.execute(
        "UPDATE monitoring_card_ledger SET last_balance = 49.00 WHERE card_id IN ('C1', 'C2')"
    )
    c1_order = await log_row(
        conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00"
    )
    await log_row(conn, "C2", kind="bar_order", amount="5.00", previous="40.00", new="35.00")

    await _critical(conn)

    # The only break is C1's: C2's next row was judged against its order (40.00, above the
    # fold), not against the ledger's 49.00.
    [data] = await _breaks(conn)
    assert (data["log_id"], data["preceding_log_id"]) == (c1_order, c1_recharge)
    assert data["preceding_new_balance"] == Decimal("49.00")


async def test_a_card_with_a_row_above_the_fold_costs_no_ledger_probe(
    conn: asyncpg.Connection,
) -> None:
    """Issue 19.1: the step that finds a card's row above the ledger's last id has found the
    predecessor (the ledger holds nothing newer), so the ledger's row is not read for it: one
    random probe less per payment of a card that paid since the last fold."""
    await put_card(conn, "C1", "50.00")
    await put_card(conn, "C2", "50.00")
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00")
    await log_row(conn, "C2", kind="stripe_recharge", amount="50.00", previous="0.00", new="50.00")
    await _critical(conn)  # builds the ledger (the first run folds)
    await log_row(conn, "C2", kind="bar_order", amount="10.00", previous="50.00", new="40.00")
    await _critical(conn)  # judges it; the ledger stays behind
    await log_row(conn, "C1", kind="bar_order", amount="10.00", previous="50.00", new="40.00")
    await log_row(conn, "C2", kind="bar_order", amount="5.00", previous="40.00", new="35.00")

    probes = (
        "SELECT coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
        " WHERE relname = 'monitoring_card_ledger'"
    )
    async with conn.transaction():
        before = await conn.fetchval(probes)
        result = json.loads(
            await conn.fetchval("SELECT monitoring_run_rule('balance_chain_break', NULL, 1)")
        )
        probed = await conn.fetchval(probes) - before

    assert (result["success"], result["rows_examined"]) == (True, 2), result
    assert probed == 1  # C1's; C2's predecessor is its order above the fold
    assert await _breaks(conn) == []
