"""The simulator's anomaly writes: each the way the faulty component would write it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.db.simulation.records import (
    BarOrder,
    Scan,
    SimulationRefused,
    Truth,
    Written,
    to_jsonb,
)
from festmon_tui.db.simulation.writes import insert_scans, record_truth, truth_with_ids

# Card $1's row locked and debited by $2: CTE `debit` holds its previous and new balance.
_LOCKED_DEBIT = """
WITH card AS (
    SELECT id, amount FROM table_cards WHERE id = $1 FOR UPDATE
), debit AS (
    UPDATE table_cards t SET amount = card.amount - $2::numeric
      FROM card WHERE t.id = card.id
    RETURNING card.amount AS previous, t.amount AS new
)"""

DEBIT_THEN_FAIL_SQL = (
    _LOCKED_DEBIT
    + """
INSERT INTO app_transaction_log (
    card_id, transaction_type, status, amount_involved, previous_balance, new_balance,
    details, edge_function_name, client_request_id, "timestamp")
SELECT $1, 'bar_order', 'failed', $2::numeric, debit.previous, debit.new, $3::jsonb,
       'process-bar-order', $4, clock_timestamp()
  FROM debit
RETURNING transaction_id, previous_balance, new_balance, "timestamp"
"""
)

# A till's offline queue replayed on reconnect: every order refused before reaching a card.
REPLAY_FAILED_SQL = """
INSERT INTO app_transaction_log (
    card_id, transaction_type, status, amount_involved, previous_balance, new_balance,
    details, edge_function_name, client_request_id, "timestamp")
SELECT r.card, 'bar_order', 'failed', r.total, NULL, NULL, r.details, 'process-bar-order',
       r.crid, clock_timestamp()
  FROM unnest($1::text[], $2::numeric[], $3::jsonb[], $4::text[]) WITH ORDINALITY
       AS r (card, total, details, crid, ord)
 ORDER BY r.ord
RETURNING transaction_id, "timestamp"
"""

# A balance changed from the table editor / an old script: no ledger row at all.
SILENT_BALANCE_SQL = """
UPDATE table_cards SET amount = amount + $2::numeric WHERE id = $1
RETURNING amount - $2::numeric AS previous, amount AS new, clock_timestamp() AS at
"""

# A webhook that read the balance before another payment committed and writes what it computed
# from that stale read (no row lock): the other payment's debit is lost.
STALE_CREDIT_SQL = """
WITH credit AS (
    UPDATE table_cards SET amount = $2::numeric + $3::numeric WHERE id = $1
    RETURNING id
), recharge AS (
    INSERT INTO recharges (id_card, card_id, amount, paid_by_card, stripe_session_id,
                           stripe_metadata)
    SELECT $1, $1, $3::numeric, true, $4, $5::jsonb FROM credit
    RETURNING id
)
INSERT INTO app_transaction_log (
    card_id, transaction_type, status, amount_involved, previous_balance, new_balance,
    details, edge_function_name, client_request_id, "timestamp")
SELECT $1, 'stripe_recharge', 'completed', $3::numeric, $2::numeric, $2::numeric + $3::numeric,
       jsonb_build_object('recharge_id', recharge.id, 'payment_method', 'stripe',
                          'staff_id', NULL, 'checkpoint_id', NULL,
                          'stripe_session_id', $4::text, 'stripe_metadata', $5::jsonb),
       'stripe-webhook', NULL, clock_timestamp()
  FROM recharge
RETURNING transaction_id, previous_balance, new_balance, "timestamp"
"""

# A till that settles an order itself (offline mode, or a buggy total): it takes the card's
# balance and debits `debit` ($2), which may exceed the balance or differ from the total ($3):
# after the debit, the order, its items and the log row.
_DIRECT_ORDER = """, bar_order AS (
    INSERT INTO bar_orders (card_id, total_amount, status, point_of_sale, client_request_id)
    SELECT $1, $3::numeric, 'completed', $5, $6 FROM debit
    RETURNING id
), items AS (
    INSERT INTO bar_order_items (order_id, product_name, price, quantity, is_deposit, is_return)
    SELECT bar_order.id, i ->> 'name', (i ->> 'unit_price')::numeric,
           coalesce((i ->> 'quantity')::integer, 1),
           coalesce((i ->> 'is_deposit')::boolean, false),
           coalesce((i ->> 'is_return')::boolean, false)
      FROM bar_order, jsonb_array_elements($4::jsonb) AS i
)
INSERT INTO app_transaction_log (
    card_id, transaction_type, status, amount_involved, previous_balance, new_balance,
    details, edge_function_name, client_request_id, "timestamp")
SELECT $1, 'bar_order', 'completed', $3::numeric, debit.previous, debit.new,
       jsonb_build_object('items', $4::jsonb, 'order_id', bar_order.id,
                          'point_of_sale', $5::integer) || $7::jsonb,
       'process-bar-order', $6, clock_timestamp()
  FROM debit, bar_order
RETURNING transaction_id, previous_balance, new_balance, "timestamp"
"""
DIRECT_DEBIT_SQL = _LOCKED_DEBIT + _DIRECT_ORDER


class AnomalyWrites:
    """Anomaly writes of SimulationStore (a base class of it, on its pool)."""

    pool: asyncpg.Pool

    async def debit_then_fail(
        self, order: BarOrder, details: dict[str, Any], scans: Sequence[Scan], truth: Truth
    ) -> Written:
        """The card is debited, the order is not recorded, the failure is logged with balances."""
        with translated():
            args = (order.total, to_jsonb(details), order.client_request_id)
            return await self._log_row(
                DEBIT_THEN_FAIL_SQL, order.card_id, args, scans, truth, success=False
            )

    async def replay_failed_orders(
        self, orders: Sequence[tuple[BarOrder, dict[str, Any]]], truth: Truth
    ) -> Written:
        """Many refused orders of one till at once (its offline queue replayed on reconnect)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    REPLAY_FAILED_SQL,
                    [o.card_id for o, _ in orders],
                    [o.total for o, _ in orders],
                    [to_jsonb(d) for _, d in orders],
                    [o.client_request_id for o, _ in orders],
                )
                ids = tuple(UUID(str(r["transaction_id"])) for r in rows)
                anomaly_id, _ = await record_truth(conn, truth_with_ids(truth, ids, ()))
        return Written(
            at=rows[0]["timestamp"], transaction_ids=ids, success=False, anomaly_id=anomaly_id
        )

    async def change_balance_silently(self, card_id: str, delta: Decimal, truth: Truth) -> Written:
        """UPDATE table_cards behind the ledger's back: no log row."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(SILENT_BALANCE_SQL, card_id, delta)
                if row is None:
                    raise SimulationRefused(f"card {card_id} does not exist")
                anomaly_id, _ = await record_truth(conn, truth)
        return Written(
            at=row["at"],
            previous_balance=row["previous"],
            new_balance=row["new"],
            anomaly_id=anomaly_id,
        )

    async def stale_credit(
        self,
        card_id: str,
        stale_balance: Decimal,
        amount: Decimal,
        stripe_session_id: str,
        metadata: dict[str, Any],
        truth: Truth,
    ) -> Written:
        """A Stripe webhook writes stale_balance + amount, losing what happened in between."""
        with translated():
            args = (stale_balance, amount, stripe_session_id, to_jsonb(metadata))
            return await self._log_row(STALE_CREDIT_SQL, card_id, args, (), truth)

    async def direct_debit(
        self,
        order: BarOrder,
        debit: Decimal,
        extra_details: dict[str, Any],
        scans: Sequence[Scan],
        truth: Truth,
    ) -> Written:
        """A till settling an order itself: no funds check; `debit` may differ from the total."""
        with translated():
            args = (
                debit,
                order.total,
                to_jsonb(list(order.items)),
                order.point_of_sale,
                order.client_request_id,
                to_jsonb(extra_details),
            )
            return await self._log_row(DIRECT_DEBIT_SQL, order.card_id, args, scans, truth)

    async def _log_row(
        self,
        sql: str,
        card_id: str,
        args: tuple[Any, ...],
        scans: Sequence[Scan],
        truth: Truth,
        *,
        success: bool = True,
    ) -> Written:
        """One anomaly that writes one log row (`sql` on card_id, args), its scans and truth."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql, card_id, *args)
            if row is None:
                raise SimulationRefused(f"card {card_id} does not exist")
            scan_ids = await insert_scans(conn, scans)
            written = Written(
                at=row["timestamp"],
                transaction_ids=(UUID(str(row["transaction_id"])),),
                scan_log_ids=scan_ids,
                success=success,
                previous_balance=row["previous_balance"],
                new_balance=row["new_balance"],
            )
            anomaly_id, _ = await record_truth(
                conn, truth_with_ids(truth, written.transaction_ids, scan_ids)
            )
        return replace(written, anomaly_id=anomaly_id)
