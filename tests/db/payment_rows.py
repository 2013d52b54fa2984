"""Helpers of the detection rules' database tests: payment rows written directly, rule calls."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg


async def put_card(conn: asyncpg.Connection, card: str, amount: str) -> None:
    """Create the card with this balance, or set the balance of an existing one."""
    await conn.execute(
        "INSERT INTO table_cards (id, amount) VALUES ($1, $2::numeric)"
        " ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount",
        card,
        amount,
    )


async def db_now(conn: asyncpg.Connection) -> datetime:
    """The database's now(): the clock the rules' windows are measured with."""
    return await conn.fetchval("SELECT now()")


async def log_row(
    conn: asyncpg.Connection,
    card: str,
    *,
    at: datetime | None = None,
    kind: str = "bar_order",
    status: str = "completed",
    amount: str | None = "5.00",
    previous: str | None = None,
    new: str | None = None,
    request: str | None = None,
    edge_function: str | None = None,
    transaction_id: str | None = None,
) -> int:
    """One app_transaction_log row (at the database's now() unless `at`; a random
    transaction_id unless given); returns its log_id."""
    return await conn.fetchval(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp",
                                         client_request_id, edge_function_name, transaction_id)
        VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, coalesce($7, now()), $8, $9,
                coalesce($10::uuid, gen_random_uuid()))
        RETURNING log_id
        """,
        card,
        kind,
        status,
        amount,
        previous,
        new,
        at,
        request,
        edge_function,
        transaction_id,
    )


async def scan_row(
    conn: asyncpg.Connection, card: str, at: datetime, status: str = "success"
) -> int:
    """One nfc_scan_log row; returns its scan_log_id."""
    return await conn.fetchval(
        "INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status)"
        " VALUES ($1, $2, $3) RETURNING scan_log_id",
        card,
        at,
        status,
    )


async def run_rule(conn: asyncpg.Connection, function: str) -> dict[str, Any]:
    """Call one detection function (a fixed name from the test, never data); its JSON result."""
    result: dict[str, Any] = json.loads(
        await conn.fetchval(f"SELECT {function}()"), parse_float=Decimal
    )
    return result


async def rule_events(conn: asyncpg.Connection, algorithm: str) -> list[asyncpg.Record]:
    """The events one detection algorithm raised, oldest first."""
    return await conn.fetch(
        "SELECT * FROM monitoring_events WHERE detection_algorithm = $1 ORDER BY event_id",
        algorithm,
    )


def event_data(event: asyncpg.Record) -> dict[str, Any]:
    """An event's event_data, money as Decimal."""
    data: dict[str, Any] = json.loads(event["event_data"], parse_float=Decimal)
    return data
