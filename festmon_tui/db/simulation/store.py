"""SimulationStore: the simulator's runs, payments and what it reads back (anomaly writes:
anomaly_writes.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from festmon_tui.db.errors import SchemaMissing, translated
from festmon_tui.db.events import EVENT_COLUMNS, event_from_record
from festmon_tui.db.simulation.anomaly_writes import AnomalyWrites
from festmon_tui.db.simulation.history import ANALYZE_SQL, HistoryWriter, write_history
from festmon_tui.db.simulation.records import (
    BarOrder,
    Conn,
    GroundTruth,
    HistoryBatch,
    Recharge,
    RunRecord,
    Scan,
    SimulationRefused,
    Truth,
    Written,
    as_decimal,
    as_uuid,
    json_object,
    payment_document,
    to_jsonb,
)
from festmon_tui.db.simulation.writes import insert_scans, record_truth, tap_scans, truth_with_ids
from festmon_tui.models import Event

log = logging.getLogger(__name__)

SPIKE_ALGORITHM = "system_failure_spike"

SCHEMA_SQL = """
SELECT to_regclass('simulation_ground_truth') IS NOT NULL AS ground_truth,
       to_regclass('simulation_runs') IS NOT NULL AS runs,
       to_regprocedure('sp_process_bar_order(text, jsonb, numeric, text, integer)') IS NOT NULL
           AS bar_order,
       to_regproc('sp_process_recharge') IS NOT NULL AS recharge,
       to_regclass('table_cards') IS NOT NULL AS payment_tables,
       to_regclass('festmon_schema_migrations') IS NOT NULL AS ledger
"""

# Only run when the ledger exists (a missing table in the query text is an error).
REFERENCE_SCHEMA_SQL = """
SELECT EXISTS (SELECT 1 FROM festmon_schema_migrations WHERE migration_set = 'payments')
"""

NOW_SQL = "SELECT clock_timestamp()"
CHECKPOINT_SQL = "CHECKPOINT"

START_RUN_SQL = """
INSERT INTO simulation_runs (seed, config, host, pid)
VALUES ($1, $2::jsonb, $3, $4)
RETURNING run_id, started_at, (SELECT count(*) FROM simulation_runs) - 1 AS ordinal
"""

END_RUN_SQL = """
UPDATE simulation_runs SET ended_at = coalesce($2, clock_timestamp()), stats = $3::jsonb
WHERE run_id = $1
"""

RUN_SQL = """
SELECT run_id, seed, started_at, ended_at, config, stats FROM simulation_runs
WHERE ($1::bigint IS NULL OR run_id = $1)
ORDER BY run_id DESC
LIMIT 1
"""

EXISTING_CARDS_SQL = "SELECT id FROM table_cards WHERE id = ANY($1::text[])"

CREATE_CARD_SQL = """
INSERT INTO table_cards (id, amount) VALUES ($1, 0)
RETURNING created_at
"""

BAR_ORDER_SQL = """
SELECT clock_timestamp() AS at, sp_process_bar_order($1, $2::jsonb, $3::numeric, $4, $5) AS doc
"""

RECHARGE_SQL = """
SELECT clock_timestamp() AS at,
       sp_process_recharge(card_id_in => $1, amount_in => $2::numeric, recharge_type_in => $3,
                           client_request_id_in => $4, payment_method_in => $5,
                           staff_id_in => $6, checkpoint_id_in => $7,
                           stripe_session_id_in => $8) AS doc
"""

# The faulty edge function: debits the card, then fails to record the order and logs the
# failure with the balances it had computed, without undoing the debit.
GROUND_TRUTH_SQL = """
SELECT anomaly_id, run_id, kind, rule, expected_rules, card_id, transaction_ids, scan_log_ids,
       started_at, injected_at, details
FROM simulation_ground_truth
WHERE run_id = $1
ORDER BY anomaly_id
"""

EVENTS_SINCE_SQL = (
    "SELECT" + EVENT_COLUMNS + "FROM monitoring_events WHERE last_seen_at >= $1 ORDER BY event_id"
)

ACTIVE_SPIKE_SQL = """
SELECT EXISTS (
    SELECT 1 FROM monitoring_events
     WHERE detection_algorithm = $1 AND status IN ('OPEN', 'INVESTIGATING'))
"""

MAX_IDS_SQL = """
SELECT (SELECT coalesce(max(log_id), 0) FROM app_transaction_log) AS log_id,
       (SELECT coalesce(max(scan_log_id), 0) FROM nfc_scan_log) AS scan_id
"""

# Whether every incremental rule's watermark covers all rows up to the given ids (no gap left
# below them); false while no rule has run yet.
CAUGHT_UP_SQL = """
SELECT count(*) > 0
       AND bool_and(w.last_log_id >= target.upto
                    AND NOT (w.pending_gaps && int8multirange(int8range(NULL, target.upto + 1))))
  FROM monitoring_detector_watermarks AS w
  CROSS JOIN LATERAL (
      SELECT CASE w.source_table WHEN 'nfc_scan_log' THEN $2::bigint ELSE $1::bigint END AS upto
  ) AS target
"""


class SimulationStore(AnomalyWrites):
    """Everything the simulator writes and reads, on a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.checkpointed: asyncio.Task[bool] | None = None

    # -- setup and runs ----------------------------------------------------------------------

    async def check_schema(self) -> None:
        """Refuse databases without festmon's reference payment schema (never a real festival)."""
        with translated():
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(SCHEMA_SQL)
                assert row is not None
                reference = row["ledger"] and await conn.fetchval(REFERENCE_SCHEMA_SQL)
        if not reference:
            raise SimulationRefused(
                "this database has no festmon reference payment schema; the simulator only "
                "writes to demo / test databases (festmon db migrate --with-payment-schema)"
            )
        if not (row["bar_order"] and row["recharge"]):
            raise SchemaMissing(
                "the payment procedures are missing (run festmon db migrate --with-payment-schema)"
            )
        if not (row["ground_truth"] and row["runs"]):
            raise SchemaMissing(
                "simulation_ground_truth is missing (run festmon db migrate to apply "
                "migrations/payments/V0100__simulation_ground_truth.sql)"
            )

    async def now(self) -> datetime:
        with translated():
            async with self.pool.acquire() as conn:
                value: datetime = await conn.fetchval(NOW_SQL)
        return value

    async def start_run(self, seed: int, config: dict[str, Any]) -> tuple[RunRecord, int]:
        """Record a new run; returns it and its ordinal (runs before it in this database)."""
        with translated():
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    START_RUN_SQL, seed, to_jsonb(config), socket.gethostname(), os.getpid()
                )
        assert row is not None
        run = RunRecord(int(row["run_id"]), seed, row["started_at"], None, config, {})
        return run, int(row["ordinal"])

    async def end_run(
        self, run_id: int, stats: dict[str, Any], ended_at: datetime | None = None
    ) -> None:
        with translated():
            async with self.pool.acquire() as conn:
                await conn.execute(END_RUN_SQL, run_id, ended_at, to_jsonb(stats))

    async def run(self, run_id: int | None = None) -> RunRecord | None:
        """One run, or the latest one."""
        with translated():
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(RUN_SQL, run_id)
        if row is None:
            return None
        return RunRecord(
            int(row["run_id"]),
            int(row["seed"]),
            row["started_at"],
            row["ended_at"],
            json_object(row["config"]),
            json_object(row["stats"]),
        )

    async def existing_cards(self, card_ids: Sequence[str]) -> set[str]:
        with translated():
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(EXISTING_CARDS_SQL, list(card_ids))
        return {str(r["id"]) for r in rows}

    async def write_history(self, batch: HistoryBatch) -> None:
        """Write the festival's earlier activity (cards, payments, scans) in one transaction."""
        with translated():
            async with self.pool.acquire() as conn:
                await write_history(conn, batch)

    @asynccontextmanager
    async def history(self) -> AsyncIterator[HistoryWriter]:
        """A writer for the festival's earlier activity, chunk by chunk, in one transaction
        (committed when the block ends; the caller calls `finish` with the cards last)."""
        with translated():
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    yield HistoryWriter(conn)
                await conn.execute(ANALYZE_SQL)
        self.checkpointed = asyncio.create_task(self._checkpoint(), name="history-checkpoint")

    async def _checkpoint(self) -> bool:
        """Write the bulk-loaded festival to disk now, in the background, as after any bulk load.

        Otherwise the next checkpoint has it all: when the demo's server is stopped soon after
        its start (a dropped session), its shutdown checkpoint wrote and fsynced every file of
        the new database (~3 400 buffers, ~780 files, 2 s on a loaded machine). Returns whether
        it ran: CHECKPOINT needs a superuser or pg_checkpoint (the embedded server's user is).
        """
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(CHECKPOINT_SQL)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.debug("no checkpoint after the history: %s", exc)
            return False
        return True

    # -- normal traffic ----------------------------------------------------------------------

    async def create_card(self, card_id: str) -> datetime:
        with translated():
            async with self.pool.acquire() as conn:
                created: datetime = await conn.fetchval(CREATE_CARD_SQL, card_id)
        return created

    async def pay(
        self,
        payment: BarOrder | Recharge,
        tap: Scan | None = None,
        extra_scans: Sequence[Scan] = (),
        truth: Truth | None = None,
        device_ms: int = 0,
    ) -> Written:
        """One payment through the reference procedures, then its scans as the reader logs them.

        The reader logs the tap when the payment answered, with its outcome and processing time
        (`device_ms`, the reader's and network's share, plus the time the database took).
        """
        with translated():
            async with self.pool.acquire() as conn:
                if truth is None:
                    return await self._pay(conn, payment, tap, extra_scans, None, device_ms)
                async with conn.transaction():
                    return await self._pay(conn, payment, tap, extra_scans, truth, device_ms)

    async def _pay(
        self,
        conn: Conn,
        payment: BarOrder | Recharge,
        tap: Scan | None,
        extra_scans: Sequence[Scan],
        truth: Truth | None,
        device_ms: int,
    ) -> Written:
        started = time.perf_counter()
        if isinstance(payment, BarOrder):
            row = await conn.fetchrow(
                BAR_ORDER_SQL,
                payment.card_id,
                to_jsonb(list(payment.items)),
                payment.total,
                payment.client_request_id,
                payment.point_of_sale,
            )
        else:
            row = await conn.fetchrow(
                RECHARGE_SQL,
                payment.card_id,
                payment.amount,
                payment.recharge_type,
                payment.client_request_id,
                payment.payment_method,
                payment.staff_id,
                payment.checkpoint_id,
                payment.stripe_session_id,
            )
        assert row is not None
        db_ms = max(1, round((time.perf_counter() - started) * 1000))
        doc = payment_document(row["doc"])
        success = bool(doc.get("success"))
        transaction_id = as_uuid(doc.get("transaction_id"))
        duration_ms = db_ms + device_ms
        shaped = tap_scans(tap, extra_scans, success, doc, duration_ms)
        scan_ids = await insert_scans(conn, shaped)
        written = Written(
            at=row["at"],
            transaction_ids=(transaction_id,) if transaction_id else (),
            scan_log_ids=scan_ids,
            success=success,
            error_code=doc.get("error_code"),
            previous_balance=as_decimal(doc.get("previous_balance", doc.get("current_balance"))),
            new_balance=as_decimal(doc.get("new_balance", doc.get("current_balance"))),
            duration_ms=duration_ms,
        )
        if truth is not None:
            anomaly_id, _ = await record_truth(
                conn, truth_with_ids(truth, written.transaction_ids, scan_ids)
            )
            written = replace(written, anomaly_id=anomaly_id)
        return written

    async def scans(self, scans: Sequence[Scan], truth: Truth | None = None) -> Written:
        """Scans that lead to no payment (a read error, a second read of the same tap)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                at: datetime = await conn.fetchval(NOW_SQL)
                scan_ids = await insert_scans(conn, scans)
                anomaly_id = None
                if truth is not None:
                    anomaly_id, _ = await record_truth(conn, truth_with_ids(truth, (), scan_ids))
        return Written(at=at, scan_log_ids=scan_ids, anomaly_id=anomaly_id)

    # -- reading back --------------------------------------------------------------------------

    async def ground_truth(self, run_id: int) -> list[GroundTruth]:
        with translated():
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(GROUND_TRUTH_SQL, run_id)
        return [
            GroundTruth(
                anomaly_id=int(r["anomaly_id"]),
                run_id=int(r["run_id"]),
                kind=r["kind"],
                rule=r["rule"],
                expected_rules=tuple(r["expected_rules"]),
                card_id=r["card_id"],
                transaction_ids=tuple(r["transaction_ids"]),
                scan_log_ids=tuple(int(i) for i in r["scan_log_ids"]),
                started_at=r["started_at"],
                injected_at=r["injected_at"],
                details=json_object(r["details"]),
            )
            for r in rows
        ]

    async def events_seen_since(self, since: datetime) -> list[Event]:
        """Every monitoring event first or last seen at or after `since`."""
        with translated():
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(EVENTS_SINCE_SQL, since)
        return [event_from_record(r) for r in rows]

    async def max_ids(self) -> tuple[int, int]:
        """The newest app_transaction_log and nfc_scan_log ids."""
        with translated():
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(MAX_IDS_SQL)
        assert row is not None
        return int(row["log_id"]), int(row["scan_id"])

    async def detectors_caught_up(self, log_id: int, scan_id: int) -> bool:
        """Whether every incremental rule has examined every row up to these ids."""
        with translated():
            async with self.pool.acquire() as conn:
                return bool(await conn.fetchval(CAUGHT_UP_SQL, log_id, scan_id))

    async def active_spike_event(self) -> bool:
        with translated():
            async with self.pool.acquire() as conn:
                return bool(await conn.fetchval(ACTIVE_SPIKE_SQL, SPIKE_ALGORITHM))
