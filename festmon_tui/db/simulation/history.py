"""The festival's history, bulk-loaded with its own timestamps before the live traffic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from festmon_tui.db.simulation.records import Conn, HistoryBatch, HistoryEntry, columns, to_jsonb
from festmon_tui.db.simulation.writes import scan_arrays

HISTORY_CARDS_SQL = """
INSERT INTO table_cards (id, amount, created_at, updated_at)
SELECT c.id, c.amount, c.created_at, c.updated_at
  FROM unnest($1::text[], $2::numeric[], $3::timestamptz[], $4::timestamptz[])
       AS c (id, amount, created_at, updated_at)
"""

# History is bulk-loaded with ids taken from the tables' own sequences first, so that every
# log row can carry the id of its order / recharge like the procedures' rows do, without joins.
NEXT_IDS_SQL = """
SELECT array_agg(nextval(pg_get_serial_sequence($1, 'id')) ORDER BY g)
  FROM generate_series(1, $2) AS g
"""

# Orders, their items and recharges refer to table_cards, whose rows carry each card's balance at
# the end of the history: while the history is written chunk by chunk they are staged in
# temporary tables, and moved once the cards exist (MOVE_STAGED_SQL).
STAGE_SQL = """
CREATE TEMP TABLE festmon_history_orders ON COMMIT DROP AS
SELECT id, card_id, total_amount, status, point_of_sale, client_request_id, created_at, updated_at
  FROM bar_orders WITH NO DATA;
CREATE TEMP TABLE festmon_history_items ON COMMIT DROP AS
SELECT order_id, product_name, price, quantity, is_deposit, is_return, created_at
  FROM bar_order_items WITH NO DATA;
CREATE TEMP TABLE festmon_history_recharges ON COMMIT DROP AS
SELECT id, id_card, card_id, amount, paid_by_card, stripe_session_id, client_request_id,
       staff_id, checkpoint_id, created_at, updated_at
  FROM recharges WITH NO DATA
"""

MOVE_STAGED_SQL = """
INSERT INTO bar_orders (id, card_id, total_amount, status, point_of_sale, client_request_id,
                        created_at, updated_at)
SELECT id, card_id, total_amount, status, point_of_sale, client_request_id, created_at, updated_at
  FROM festmon_history_orders ORDER BY id;
INSERT INTO bar_order_items (order_id, product_name, price, quantity, is_deposit, is_return,
                             created_at)
SELECT order_id, product_name, price, quantity, is_deposit, is_return, created_at
  FROM festmon_history_items ORDER BY order_id;
INSERT INTO recharges (id, id_card, card_id, amount, paid_by_card, stripe_session_id,
                       client_request_id, staff_id, checkpoint_id, created_at, updated_at)
SELECT id, id_card, card_id, amount, paid_by_card, stripe_session_id, client_request_id,
       staff_id, checkpoint_id, created_at, updated_at
  FROM festmon_history_recharges ORDER BY id
"""

HISTORY_ORDERS_SQL = """
INSERT INTO festmon_history_orders (id, card_id, total_amount, status, point_of_sale,
                                    client_request_id, created_at, updated_at)
SELECT o.id, o.card, o.total, 'completed', o.pos, o.crid, o.at, o.at
  FROM unnest($1::int[], $2::text[], $3::numeric[], $4::int[], $5::text[], $6::timestamptz[])
       AS o (id, card, total, pos, crid, at)
"""

HISTORY_ITEMS_SQL = """
INSERT INTO festmon_history_items (order_id, product_name, price, quantity, is_deposit,
                                   is_return, created_at)
SELECT i.order_id, i.name, i.price, i.quantity, i.deposit, i.ret, i.at
  FROM unnest($1::int[], $2::text[], $3::numeric[], $4::int[], $5::bool[], $6::bool[],
              $7::timestamptz[]) AS i (order_id, name, price, quantity, deposit, ret, at)
"""

HISTORY_RECHARGES_SQL = """
INSERT INTO festmon_history_recharges (id, id_card, card_id, amount, paid_by_card,
                                       stripe_session_id, client_request_id, staff_id,
                                       checkpoint_id, created_at, updated_at)
SELECT r.id, r.card, r.card, r.amount, r.paid, r.session, r.crid, r.staff, r.cp, r.at, r.at
  FROM unnest($1::int[], $2::text[], $3::numeric[], $4::bool[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::timestamptz[])
       AS r (id, card, amount, paid, session, crid, staff, cp, at)
"""

# In time order, so log ids grow with time as they do live.
HISTORY_LOG_SQL = """
INSERT INTO app_transaction_log (
    card_id, transaction_type, status, amount_involved, previous_balance, new_balance,
    details, edge_function_name, client_request_id, "timestamp")
SELECT e.card, e.type, 'completed', e.amount, e.previous, e.new, e.details, e.fn, e.crid, e.at
  FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[],
              $6::jsonb[], $7::text[], $8::text[], $9::timestamptz[]) WITH ORDINALITY
       AS e (card, type, amount, previous, new, details, fn, crid, at, ord)
 ORDER BY e.at, e.ord
"""

HISTORY_SCANS_SQL = """
INSERT INTO nfc_scan_log (
    card_id_scanned, raw_data, scan_timestamp, scan_status, processing_duration_ms,
    operation_id, client_request_id, scan_location_context, device_identifier, user_agent,
    error_message, error_code, edge_function_name, metadata)
SELECT s.card, s.raw, s.at, s.status, s.ms, s.op, s.crid, s.loc, s.device, s.agent,
       s.err_msg, s.err_code, s.fn, s.meta
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::text[],
              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
              $13::text[], $14::jsonb[]) WITH ORDINALITY
       AS s (card, raw, at, status, ms, op, crid, loc, device, agent, err_msg, err_code, fn,
             meta, ord)
 ORDER BY s.at, s.ord
"""

EDGE_FUNCTIONS = {
    "bar_order": "process-bar-order",
    "stripe_recharge": "stripe-webhook",
    "checkpoint_recharge": "process-checkpoint-recharge",
    "standard_recharge": "process-standard-recharge",
}

# Bulk loads leave the planner without statistics; the detection rules' plans depend on them.
ANALYZE_SQL = """
ANALYZE table_cards, app_transaction_log, nfc_scan_log, bar_orders, bar_order_items, recharges
"""


class HistoryWriter:
    """Writes the festival's history in chunks inside the caller's transaction.

    The caller generates the history a chunk at a time (`write`), so that it never holds the
    whole day in memory (60 000 payments at 50/s: ~110 MB of Python objects, and a process
    heap that stays that large after they are freed); `finish` then writes the cards with
    their final balances and moves the staged orders, items and recharges after them.
    """

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._started = False

    async def write(self, batch: HistoryBatch, chunk: int = 20_000) -> None:
        """Payments and scans of one stretch of the history (in time order)."""
        if not self._started:
            await self.conn.execute(STAGE_SQL)
            self._started = True
        for entries in chunks(batch.entries, chunk):
            await _write_entries(self.conn, entries)
        for scans in chunks(batch.scans, chunk):
            arrays = scan_arrays([s for _, s in scans])
            arrays[2] = [at for at, _ in scans]
            await self.conn.execute(HISTORY_SCANS_SQL, *arrays)

    async def finish(
        self, cards: Sequence[tuple[str, Decimal, datetime]], chunk: int = 20_000
    ) -> None:
        """The cards (id, balance at the end of the history, created at), then the staged rows."""
        for part in chunks(cards, chunk):
            await self.conn.execute(
                HISTORY_CARDS_SQL,
                [c[0] for c in part],
                [c[1] for c in part],
                [c[2] for c in part],
                [c[2] for c in part],
            )
        if self._started:
            await self.conn.execute(MOVE_STAGED_SQL)


async def write_history(conn: Conn, batch: HistoryBatch, chunk: int = 20_000) -> None:
    """Cards, payments and scans of the festival so far, in one transaction, then ANALYZE."""
    async with conn.transaction():
        writer = HistoryWriter(conn)
        await writer.write(batch, chunk)
        await writer.finish(batch.cards, chunk)
    await conn.execute(ANALYZE_SQL)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _next_ids(conn: Conn, table: str, count: int) -> list[int]:
    if count == 0:
        return []
    ids = await conn.fetchval(NEXT_IDS_SQL, table, count)
    return [int(i) for i in ids]


async def _write_entries(conn: Conn, entries: Sequence[HistoryEntry]) -> None:
    orders = [e for e in entries if e.transaction_type == "bar_order"]
    recharges = [e for e in entries if e.transaction_type != "bar_order"]
    order_ids = await _next_ids(conn, "bar_orders", len(orders))
    recharge_ids = await _next_ids(conn, "recharges", len(recharges))
    if orders:
        await conn.execute(
            HISTORY_ORDERS_SQL,
            order_ids,
            *columns(orders, "card_id", "amount", "point_of_sale", "client_request_id", "at"),
        )
        items = [(oid, e, i) for oid, e in zip(order_ids, orders, strict=True) for i in e.items]
        await conn.execute(
            HISTORY_ITEMS_SQL,
            [oid for oid, _, _ in items],
            [str(i["name"]) for _, _, i in items],
            [Decimal(str(i["unit_price"])) for _, _, i in items],
            [int(i.get("quantity", 1)) for _, _, i in items],
            [bool(i.get("is_deposit", False)) for _, _, i in items],
            [bool(i.get("is_return", False)) for _, _, i in items],
            [e.at for _, e, _ in items],
        )
    if recharges:
        await conn.execute(
            HISTORY_RECHARGES_SQL,
            recharge_ids,
            *columns(recharges, "card_id", "amount"),
            [e.payment_method in ("stripe", "card") for e in recharges],
            *columns(
                recharges,
                "stripe_session_id",
                "client_request_id",
                "staff_id",
                "checkpoint_id",
                "at",
            ),
        )
    details: dict[int, dict[str, Any]] = {}
    for oid, e in zip(order_ids, orders, strict=True):
        details[id(e)] = {"items": list(e.items), "order_id": oid, "point_of_sale": e.point_of_sale}
    for rid, e in zip(recharge_ids, recharges, strict=True):
        details[id(e)] = {
            "recharge_id": rid,
            "payment_method": e.payment_method,
            "staff_id": e.staff_id,
            "checkpoint_id": e.checkpoint_id,
            "stripe_session_id": e.stripe_session_id,
            "stripe_metadata": None,
        }
    await conn.execute(
        HISTORY_LOG_SQL,
        *columns(
            entries, "card_id", "transaction_type", "amount", "previous_balance", "new_balance"
        ),
        [to_jsonb(details[id(e)]) for e in entries],
        [EDGE_FUNCTIONS.get(e.transaction_type) for e in entries],
        *columns(entries, "client_request_id", "at"),
    )
