"""The HTTP API's reads: event pages with real totals, range metrics, alerts, rule lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from festmon_tui.db.errors import DatabaseRefused, translated
from festmon_tui.db.events import EVENT_COLUMNS, event_from_record
from festmon_tui.models import Event

# NULL means "no filter"; the dates bound detection_timestamp (inclusive), as the original did.
_PAGE_WHERE = """
FROM monitoring_events
WHERE ($1::text[] IS NULL OR event_type = ANY($1::text[]))
  AND ($2::text[] IS NULL OR severity = ANY($2::text[]))
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
  AND ($4::text IS NULL OR card_id = $4::text)
  AND ($5::timestamptz IS NULL OR detection_timestamp >= $5::timestamptz)
  AND ($6::timestamptz IS NULL OR detection_timestamp <= $6::timestamptz)
"""

PAGE_SQL = (
    "SELECT"
    + EVENT_COLUMNS
    + _PAGE_WHERE
    + """
ORDER BY detection_timestamp DESC, event_id DESC
LIMIT $7 OFFSET $8
"""
)

# Totals over every matching event, not over the page (the original counted within the page).
PAGE_TOTALS_SQL = (
    """
SELECT count(*)::bigint AS total,
       count(*) FILTER (WHERE severity = 'CRITICAL')::bigint AS critical,
       count(*) FILTER (WHERE status = 'OPEN')::bigint AS open
"""
    + _PAGE_WHERE
)

ACTIVE_BY_KIND_SQL = """
SELECT event_type, severity, count(*)::bigint AS active
FROM monitoring_events
WHERE status IN ('OPEN', 'INVESTIGATING')
GROUP BY event_type, severity
ORDER BY event_type, severity
"""

# "Rows behind" is the source table's highest id minus the rule's watermark (ids, so a gap in
# the sequence counts as a row); each max() is one backward step of the primary key's index.
RULE_LAG_SQL = """
SELECT w.detector_name, w.source_table, w.last_examined_at,
       greatest(0, coalesce(CASE w.source_table
           WHEN 'app_transaction_log' THEN (SELECT max(log_id) FROM app_transaction_log)
           WHEN 'nfc_scan_log' THEN (SELECT max(scan_log_id) FROM nfc_scan_log)
       END, 0) - coalesce(w.last_log_id, 0))::bigint AS rows_behind
FROM monitoring_detector_watermarks w
ORDER BY w.detector_name
"""

RECENT_ALERTS_SQL = """
SELECT a.alert_id, a.monitoring_event_id, a.alert_level, a.alert_message, a.alert_timestamp,
       a.escalation_level, a.acknowledged_at, a.resolved_at, e.event_type, e.status
FROM alert_history a
LEFT JOIN monitoring_events e ON e.event_id = a.monitoring_event_id
ORDER BY a.alert_timestamp DESC, a.alert_id DESC
LIMIT $1
"""

# The columns of the next two are named after RangeFigures' fields.
EVENTS_IN_RANGE_SQL = """
SELECT count(*)::bigint AS events,
       count(*) FILTER (WHERE severity = 'CRITICAL')::bigint AS critical_events,
       count(*) FILTER (WHERE event_type = 'transaction_failure')::bigint AS failure_events,
       count(*) FILTER (WHERE event_type = 'balance_discrepancy')::bigint AS discrepancies,
       coalesce(sum(abs(affected_amount)) FILTER (WHERE event_type = 'balance_discrepancy'), 0)
           AS discrepancy_amount
FROM monitoring_events
WHERE detection_timestamp >= $1 AND detection_timestamp <= $2
"""

EVENTS_BY_HOUR_SQL = """
SELECT date_trunc('hour', detection_timestamp, 'UTC') AS hour, event_type,
       count(*)::bigint AS events
FROM monitoring_events
WHERE detection_timestamp >= $1 AND detection_timestamp <= $2
GROUP BY 1, 2
ORDER BY 1, 2
"""

# Scheduled and manual runs (not the manual-cycle claims still open) in the range.
RUNS_IN_RANGE_SQL = """
SELECT count(*) FILTER (WHERE success)::bigint AS runs_succeeded,
       count(*) FILTER (WHERE NOT success)::bigint AS runs_failed,
       (avg(extract(epoch FROM finished_at - started_at) * 1000)
           FILTER (WHERE success AND kind IN ('critical', 'manual', 'full')))::float8
           AS avg_detection_ms
FROM monitoring_cycle_runs
WHERE finished_at IS NOT NULL AND started_at >= $1 AND started_at <= $2
"""

PAYMENTS_IN_RANGE_SQL = """
SELECT coalesce(sum(amount_involved) FILTER (WHERE status = 'completed'), 0) AS volume,
       count(*) FILTER (WHERE status = 'failed')::bigint AS failed
FROM app_transaction_log
WHERE "timestamp" >= $1 AND "timestamp" <= $2
"""

RECENT_FAILURES_SQL = """
SELECT count(*)::bigint
FROM monitoring_events
WHERE event_type = 'transaction_failure' AND detection_timestamp >= $1
"""


@dataclass(frozen=True)
class EventPage:
    """One page of events and the totals over every event the filters match."""

    events: list[Event]
    total: int
    total_critical: int
    total_open: int


@dataclass(frozen=True)
class RuleLag:
    """How far one incremental rule is behind its source table, and when it last ran."""

    rule: str
    source_table: str
    last_examined_at: datetime | None
    rows_behind: int


@dataclass(frozen=True)
class RangeFigures:
    """Events, runs and payments counted over one time range."""

    events: int
    critical_events: int
    failure_events: int
    discrepancies: int
    discrepancy_amount: Decimal
    runs_succeeded: int
    runs_failed: int
    avg_detection_ms: float | None
    transaction_volume: Decimal | None
    failed_transactions: int | None
    events_by_hour: list[tuple[datetime, str, int]]


def _values(items: tuple[str, ...]) -> list[str] | None:
    return list(items) if items else None


class ApiReads:
    """Read-only queries behind the HTTP API's documents (no caching: totals must be true)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def event_page(
        self,
        *,
        event_types: tuple[str, ...],
        severities: tuple[str, ...],
        statuses: tuple[str, ...],
        card_id: str | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        offset: int,
    ) -> EventPage:
        args = (
            _values(event_types),
            _values(severities),
            _values(statuses),
            card_id,
            start,
            end,
        )
        with translated():
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                # One snapshot for the page and its totals, so they agree.
                totals = await conn.fetchrow(PAGE_TOTALS_SQL, *args)
                rows = await conn.fetch(PAGE_SQL, *args, limit, offset)
        assert totals is not None
        return EventPage(
            [event_from_record(r) for r in rows],
            totals["total"],
            totals["critical"],
            totals["open"],
        )

    async def active_by_kind(self) -> list[tuple[str, str, int]]:
        with translated():
            rows = await self.pool.fetch(ACTIVE_BY_KIND_SQL)
        return [(r["event_type"], r["severity"], r["active"]) for r in rows]

    async def rule_lag(self) -> list[RuleLag]:
        try:
            with translated():
                rows = await self.pool.fetch(RULE_LAG_SQL)
        except DatabaseRefused:  # no payment tables (or no SELECT on them): nothing to measure
            return []
        return [
            RuleLag(r["detector_name"], r["source_table"], r["last_examined_at"], r["rows_behind"])
            for r in rows
        ]

    async def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        with translated():
            rows = await self.pool.fetch(RECENT_ALERTS_SQL, limit)
        return [dict(r) for r in rows]

    async def recent_failures(self, since: datetime) -> int:
        with translated():
            value = await self.pool.fetchval(RECENT_FAILURES_SQL, since)
        return int(value or 0)

    async def range_figures(self, start: datetime, end: datetime) -> RangeFigures:
        with translated():
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                events = await conn.fetchrow(EVENTS_IN_RANGE_SQL, start, end)
                runs = await conn.fetchrow(RUNS_IN_RANGE_SQL, start, end)
                hours = await conn.fetch(EVENTS_BY_HOUR_SQL, start, end)
        payments = await self._payments(start, end)
        assert events is not None and runs is not None
        # The statements' columns are named after RangeFigures' fields.
        return RangeFigures(
            **dict(events),
            **dict(runs),
            transaction_volume=None if payments is None else payments["volume"],
            failed_transactions=None if payments is None else payments["failed"],
            events_by_hour=[(r["hour"], r["event_type"], r["events"]) for r in hours],
        )

    async def _payments(self, start: datetime, end: datetime) -> asyncpg.Record | None:
        try:
            with translated():
                return await self.pool.fetchrow(PAYMENTS_IN_RANGE_SQL, start, end)
        except DatabaseRefused:  # a monitoring-only database (or no SELECT on the table)
            return None
