"""One card's view from the database: all its events whatever their status, ledger, scans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from festmon_tui.db.events import EventRepository

CARD = "04A1B2C3"
ALICE = '{"os_user": "alice", "host": "h"}'


@pytest.fixture
async def events(db_dsn: str) -> AsyncIterator[EventRepository]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        yield EventRepository(pool)
    finally:
        await pool.close()


async def _event(conn: asyncpg.Connection, card: str, rule: str) -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', 'HIGH', $2, $1)", card, rule
    )
    return event_id


async def test_a_card_view_lists_every_event_of_the_card_its_ledger_and_scans(
    events: EventRepository, conn: asyncpg.Connection
) -> None:
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ($1, 7.50)", CARD)
    first = await _event(conn, CARD, "rule_one")
    second = await _event(conn, CARD, "rule_two")
    closed = await _event(conn, CARD, "rule_three")
    await conn.execute("SELECT resolve_monitoring_event($1, $2::jsonb, 'fixed')", closed, ALICE)
    await _event(conn, "ANOTHER-CARD", "rule_one")
    await conn.execute(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'standard_recharge', 'completed', 10.00, 0.00, 10.00, now() - interval '2 min'),
               ($1, 'bar_order', 'completed', 2.50, 10.00, 7.50, now() - interval '1 min')
        """,
        CARD,
    )
    await conn.execute(
        """
        INSERT INTO nfc_scan_log (card_id_scanned, scan_status, scan_timestamp)
        VALUES ($1, 'success', now() - interval '1 min')
        """,
        CARD,
    )

    view = await events.card(CARD, events_limit=10)

    assert {e.event_id for e in view.events} == {first, second, closed}
    assert [row.new_balance for row in view.ledger] == [Decimal("10.00"), Decimal("7.50")]
    assert view.ledger[-1].chain_ok is True
    assert [scan.scan_status for scan in view.scans] == ["success"]
    assert view.current_balance == Decimal("7.50") and not view.more_events


async def test_a_card_view_says_when_the_card_has_more_events_than_it_lists(
    events: EventRepository, conn: asyncpg.Connection
) -> None:
    for rule in ("a", "b", "c"):
        await _event(conn, CARD, rule)
    view = await events.card(CARD, events_limit=2)
    assert len(view.events) == 2 and view.more_events
