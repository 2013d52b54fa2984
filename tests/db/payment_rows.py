"""Helpers that write payment rows directly, for the detection rules' database tests."""

from __future__ import annotations

import asyncpg


async def put_card(conn: asyncpg.Connection, card: str, amount: str) -> None:
    """Create the card with this balance, or set the balance of an existing one."""
    await conn.execute(
        "INSERT INTO table_cards (id, amount) VALUES ($1, $2::numeric)"
        " ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount",
        card,
        amount,
    )
