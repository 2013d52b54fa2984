"""Locks on the payment tables: festmon never makes a payment wait and never hangs on a lock."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.reliability import dataset
from tests.reliability.server import Database
from tests.reliability.support import (
    FESTMON_WAITING_SQL,
    expected_events,
    observed_service,
    settles_on,
    two_batches,
    until,
)

pytestmark = pytest.mark.slow

WAIT_S = 40.0
PAYMENT_TABLES = {
    "table_cards",
    "app_transaction_log",
    "nfc_scan_log",
    "bar_orders",
    "bar_order_items",
    "recharges",
    "idempotency_keys",
}

# Locks festmon's sessions hold on payment tables, indexes counted as their table.
FESTMON_PAYMENT_LOCKS_SQL = """
SELECT coalesce(t.relname, c.relname)::text AS relname, l.mode, l.locktype, l.granted
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE a.application_name = 'festmon' AND a.datname = current_database()
"""

FESTMON_PIDS_SQL = """
SELECT array_agg(pid) FROM pg_stat_activity
WHERE application_name = 'festmon' AND datname = current_database()
"""

BLOCKERS_SQL = """
SELECT pg_blocking_pids(pid) FROM pg_stat_activity
WHERE application_name = 'payment' AND wait_event_type = 'Lock'
"""

BAR_ORDER_SQL = """
SELECT sp_process_bar_order($1, '[{"name": "beer", "unit_price": "5.00", "quantity": 1}]'::jsonb,
                            5.00, $2)
"""


async def pay(admin_dsn: str, card: str, request_id: str) -> dict[str, object]:
    """One bar order through the reference procedure, as the payment system's own session."""
    conn = await asyncpg.connect(admin_dsn, server_settings={"application_name": "payment"})
    try:
        result: dict[str, object] = json.loads(await conn.fetchval(BAR_ORDER_SQL, card, request_id))
        return result
    finally:
        await conn.close()


async def insert(admin_dsn: str, batch: dataset.Batch) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await dataset.insert(conn, batch)
    finally:
        await conn.close()


async def test_a_dba_exclusive_lock_on_cards_is_reported_and_festmon_never_queues_payments(
    rel_db: Database, reference_db: Database
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    assert (await pay(reference_db.admin_dsn, "A-ok-0", "lock-1"))["success"] is True
    admin = await rel_db.admin()
    # The schema's per-rule lock timeout (default 5 s), short so the test is quick.
    await admin.execute("UPDATE monitoring_settings SET rule_lock_timeout = '300 milliseconds'")
    try:
        async with observed_service(rel_db.tcp_dsn()) as watched:
            await insert(rel_db.admin_dsn, first)
            await settles_on(watched, rel_db.admin_dsn, expected.after_first, WAIT_S)
            await insert(rel_db.admin_dsn, second)

            # A DBA's ALTER TABLE in an open transaction: ACCESS EXCLUSIVE on table_cards.
            dba = await rel_db.admin()
            await dba.execute("BEGIN; LOCK TABLE table_cards IN ACCESS EXCLUSIVE MODE")
            mark = watched.log.mark()
            payment = asyncio.create_task(pay(rel_db.admin_dsn, "A-ok-0", "lock-1"))
            await until(lambda: admin.fetchval(BLOCKERS_SQL), 10, "the payment to queue")
            await until(lambda: admin.fetchval(FESTMON_WAITING_SQL), 10, "festmon to queue")
            # The payment waits for the DBA only, never for festmon's queued read.
            festmon = set(await admin.fetchval(FESTMON_PIDS_SQL) or [])
            blockers = set(await admin.fetchval(BLOCKERS_SQL))
            assert blockers and not blockers & festmon

            # festmon reports the lock (a failed rule), it does not hang on it.
            def lock_reported() -> bool:
                return any(
                    not r.success and "lock timeout" in r.result for r in watched.log.since(mark)
                )

            await until(lock_reported, 10, f"a lock timeout in a job result ({watched.describe()})")
            assert watched.alive()

            await dba.execute("ROLLBACK")
            await dba.close()
            assert (await asyncio.wait_for(payment, 10))["success"] is True
            await settles_on(watched, rel_db.admin_dsn, expected.after_both, WAIT_S)
    finally:
        await admin.close()


async def test_payments_row_locks_never_block_detection_and_detection_locks_no_row(
    rel_db: Database, reference_db: Database
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    assert (await pay(reference_db.admin_dsn, "A-ok-1", "rows-1"))["success"] is True
    admin = await rel_db.admin()
    try:
        async with observed_service(rel_db.tcp_dsn()) as watched:
            await insert(rel_db.admin_dsn, first)
            await settles_on(watched, rel_db.admin_dsn, expected.after_first, WAIT_S)

            # A long payment transaction holds row locks on cards festmon must read.
            holder = await rel_db.admin()
            await holder.execute(
                "BEGIN; SELECT * FROM table_cards WHERE id LIKE 'A-%' AND id <> 'A-ok-1'"
                " FOR UPDATE; UPDATE table_cards SET amount = amount WHERE id = 'A-mis'"
            )
            # Hold festmon after it has read the payment tables: writing its events waits.
            events_lock = await rel_db.admin()
            await events_lock.execute("BEGIN; LOCK TABLE monitoring_events IN SHARE MODE")
            await insert(rel_db.admin_dsn, second)
            await until(lambda: admin.fetchval(FESTMON_WAITING_SQL), 10, "festmon mid-rule")
            locks = await admin.fetch(FESTMON_PAYMENT_LOCKS_SQL)
            on_payments = {(r["relname"], r["mode"], r["locktype"]) for r in locks}
            on_payments = {lock for lock in on_payments if lock[0] in PAYMENT_TABLES}
            assert on_payments, "festmon was expected to be reading the payment tables"
            assert {mode for _, mode, _ in on_payments} == {"AccessShareLock"}
            assert {kind for _, _, kind in on_payments} == {"relation"}
            # Meanwhile a payment goes through at once.
            result = await asyncio.wait_for(pay(rel_db.admin_dsn, "A-ok-1", "rows-1"), 5)
            assert result["success"] is True
            await events_lock.execute("ROLLBACK")
            await events_lock.close()

            # Row locks never stop detection: batch B is found while they are still held.
            await settles_on(watched, rel_db.admin_dsn, expected.after_both, WAIT_S)
            await holder.execute("ROLLBACK")
            await holder.close()
            assert watched.alive()
    finally:
        await admin.close()
