"""Health snapshots, live active-event counts and the hourly event summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.models import HealthSnapshot, HealthStatus

LATEST_SQL = """
SELECT snapshot_id, snapshot_timestamp, overall_health_status, total_transactions_last_hour,
       successful_transactions_last_hour, failed_transactions_last_hour, success_rate_percent,
       total_nfc_scans_last_hour, duplicate_nfc_scans_last_hour, nfc_success_rate_percent,
       avg_processing_time_ms, p95_processing_time_ms, max_processing_time_ms,
       active_cards_count, total_system_balance, monitoring_events_last_hour,
       critical_events_last_hour, metrics_data, status_reasons
FROM system_health_snapshots
ORDER BY snapshot_timestamp DESC, snapshot_id DESC
LIMIT 1
"""

HISTORY_SQL = """
SELECT snapshot_id, snapshot_timestamp, overall_health_status, total_transactions_last_hour,
       successful_transactions_last_hour, failed_transactions_last_hour, success_rate_percent,
       total_nfc_scans_last_hour, duplicate_nfc_scans_last_hour, nfc_success_rate_percent,
       avg_processing_time_ms, p95_processing_time_ms, max_processing_time_ms,
       active_cards_count, total_system_balance, monitoring_events_last_hour,
       critical_events_last_hour, metrics_data, status_reasons
FROM system_health_snapshots
WHERE snapshot_timestamp >= $1
ORDER BY snapshot_timestamp, snapshot_id
LIMIT $2
"""

# Uses the partial index on active events by severity. Every run of an incremental rule (from
# festmon or from psql) stamps its watermark, so the newest stamp is "detection last ran".
ACTIVE_COUNTS_SQL = """
SELECT count(*)::integer AS active,
       count(*) FILTER (WHERE severity = 'CRITICAL')::integer AS critical,
       count(*) FILTER (WHERE severity = 'HIGH')::integer AS high,
       (SELECT max(last_examined_at) FROM monitoring_detector_watermarks) AS last_detection_at,
       clock_timestamp() AS server_time
FROM monitoring_events
WHERE status IN ('OPEN', 'INVESTIGATING')
"""

COUNTS_BY_HOUR_SQL = """
SELECT hour, severity, sum(event_count)::integer AS event_count
FROM monitoring_dashboard_summary
WHERE hour >= date_trunc('hour', $1::timestamptz, 'UTC')
GROUP BY hour, severity
ORDER BY hour, severity
"""

_HISTORY_LIMIT = 20_000


@dataclass(frozen=True)
class ActiveCounts:
    """Active (OPEN / INVESTIGATING) events right now, by severity that drives health."""

    active: int
    critical: int
    high: int
    last_detection_at: datetime | None
    server_time: datetime


@dataclass(frozen=True)
class HealthReading:
    """The latest snapshot with its stored reasons."""

    snapshot: HealthSnapshot
    reasons: tuple[str, ...]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def snapshot_from_record(r: asyncpg.Record) -> HealthSnapshot:
    try:
        status = HealthStatus(r["overall_health_status"])
    except ValueError:
        status = HealthStatus.UNKNOWN
    metrics = _json(r["metrics_data"])
    return HealthSnapshot(
        snapshot_id=r["snapshot_id"],
        snapshot_timestamp=r["snapshot_timestamp"],
        overall_health_status=status,
        total_transactions_last_hour=r["total_transactions_last_hour"] or 0,
        successful_transactions_last_hour=r["successful_transactions_last_hour"] or 0,
        failed_transactions_last_hour=r["failed_transactions_last_hour"] or 0,
        success_rate_percent=r["success_rate_percent"],
        total_nfc_scans_last_hour=r["total_nfc_scans_last_hour"] or 0,
        duplicate_nfc_scans_last_hour=r["duplicate_nfc_scans_last_hour"] or 0,
        nfc_success_rate_percent=r["nfc_success_rate_percent"],
        avg_processing_time_ms=r["avg_processing_time_ms"],
        p95_processing_time_ms=r["p95_processing_time_ms"],
        max_processing_time_ms=r["max_processing_time_ms"],
        active_cards_count=r["active_cards_count"],
        total_system_balance=r["total_system_balance"],
        monitoring_events_last_hour=r["monitoring_events_last_hour"] or 0,
        critical_events_last_hour=r["critical_events_last_hour"] or 0,
        metrics_data=metrics if isinstance(metrics, dict) else {},
    )


def _reasons(value: Any) -> tuple[str, ...]:
    value = _json(value)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


class HealthRepository:
    """Reads system_health_snapshots, live counts and the dashboard summary view."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def latest(self) -> HealthReading | None:
        with translated():
            row = await self.pool.fetchrow(LATEST_SQL)
        if row is None:
            return None
        return HealthReading(snapshot_from_record(row), _reasons(row["status_reasons"]))

    async def history(self, since: datetime) -> list[HealthSnapshot]:
        with translated():
            rows = await self.pool.fetch(HISTORY_SQL, since, _HISTORY_LIMIT)
        return [snapshot_from_record(r) for r in rows]

    async def active_counts(self) -> ActiveCounts:
        with translated():
            row = await self.pool.fetchrow(ACTIVE_COUNTS_SQL)
        assert row is not None
        return ActiveCounts(
            row["active"],
            row["critical"],
            row["high"],
            row["last_detection_at"],
            row["server_time"],
        )

    async def counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        with translated():
            rows = await self.pool.fetch(COUNTS_BY_HOUR_SQL, since)
        return [(r["hour"], r["severity"], r["event_count"]) for r in rows]
