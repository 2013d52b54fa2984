"""Writes shared by live payments and anomalies: the reader's scan log and ground-truth rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from festmon_tui.db.simulation.records import Conn, Scan, Truth, columns, to_jsonb

SCAN_FN = "nfc-scan-hook"

# Readers log a scan when processing ends, with the time of the tap (offset before now).
SCANS_SQL = """
INSERT INTO nfc_scan_log (
    card_id_scanned, raw_data, scan_timestamp, scan_status, processing_duration_ms,
    operation_id, client_request_id, scan_location_context, device_identifier, user_agent,
    error_message, error_code, edge_function_name, metadata)
SELECT s.card, s.raw, clock_timestamp() - make_interval(secs => s.offset_s), s.status, s.ms,
       s.op, s.crid, s.loc, s.device, s.agent, s.err_msg, s.err_code, s.fn, s.meta
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::int[], $6::text[],
              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
              $13::text[], $14::jsonb[]) WITH ORDINALITY
       AS s (card, raw, offset_s, status, ms, op, crid, loc, device, agent, err_msg, err_code,
             fn, meta, ord)
 ORDER BY s.ord
RETURNING scan_log_id
"""

TRUTH_SQL = """
INSERT INTO simulation_ground_truth (
    run_id, kind, rule, expected_rules, card_id, transaction_ids, scan_log_ids, started_at,
    details)
VALUES ($1, $2, $3, $4::text[], $5, $6::uuid[], $7::bigint[], coalesce($8, clock_timestamp()),
        $9::jsonb)
RETURNING anomaly_id, injected_at
"""


# The Scan attributes SCANS_SQL takes as $1-$12, in its order.
SCAN_COLUMNS = (
    "card_id",
    "raw_data",
    "offset_s",
    "status",
    "processing_ms",
    "operation_id",
    "client_request_id",
    "location",
    "device",
    "user_agent",
    "error_message",
    "error_code",
)


def scan_arrays(scans: Sequence[Scan]) -> list[list[Any]]:
    return [
        *columns(scans, *SCAN_COLUMNS),
        [SCAN_FN for _ in scans],
        [to_jsonb(s.metadata) for s in scans],
    ]


async def insert_scans(conn: Conn, scans: Sequence[Scan]) -> tuple[int, ...]:
    if not scans:
        return ()
    rows = await conn.fetch(SCANS_SQL, *scan_arrays(scans))
    return tuple(int(r["scan_log_id"]) for r in rows)


async def record_truth(conn: Conn, truth: Truth) -> tuple[int, datetime]:
    row = await conn.fetchrow(
        TRUTH_SQL,
        truth.run_id,
        truth.kind,
        truth.rule,
        list(truth.expected_rules),
        truth.card_id,
        [str(t) for t in truth.transaction_ids],
        list(truth.scan_log_ids),
        truth.started_at,
        to_jsonb(truth.details),
    )
    assert row is not None
    return int(row["anomaly_id"]), row["injected_at"]


def truth_with_ids(truth: Truth, transaction_ids: Sequence[UUID], scan_ids: Sequence[int]) -> Truth:
    return replace(
        truth,
        transaction_ids=(*truth.transaction_ids, *transaction_ids),
        scan_log_ids=(*truth.scan_log_ids, *scan_ids),
    )


def logged(scan: Scan, before_now_s: float, **changes: Any) -> Scan:
    """The scan as the reader logs it: placed `before_now_s` before the write, plus changes."""
    return replace(scan, offset_s=max(0.0, before_now_s), **changes)


def tap_scans(
    tap: Scan | None, extra: Sequence[Scan], success: bool, doc: dict[str, Any], duration_ms: int
) -> list[Scan]:
    """The tap's scan with the payment's outcome and processing time, plus the extra reads.

    Extra reads carry `offset_s` relative to the tap (negative: before it, like a failed read
    the cashier retried; positive: after it, like a debounced second read).
    """
    duration_s = duration_ms / 1000
    scans: list[Scan] = []
    for scan in extra:
        if scan.offset_s < 0:
            scans.append(logged(scan, duration_s - scan.offset_s))
    if tap is not None:
        scans.append(
            logged(
                tap,
                duration_s,
                status="success" if success else "processing_error",
                processing_ms=duration_ms,
                error_code=None if success else doc.get("error_code"),
                error_message=None if success else doc.get("error"),
            )
        )
    for scan in extra:
        if scan.offset_s >= 0:
            scans.append(logged(scan, duration_s - scan.offset_s))
    return scans
