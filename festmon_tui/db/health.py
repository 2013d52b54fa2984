"""Health snapshots, live active-event counts and the hourly event summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.models import HealthSnapshot, HealthStatus, RuleFailure

# The columns are named after HealthSnapshot's fields (plus status_reasons); a count the row
# leaves NULL reads as 0.
_SNAPSHOTS_SQL = """
SELECT snapshot_id, snapshot_timestamp, overall_health_status,
       coalesce(total_transactions_last_hour, 0) AS total_transactions_last_hour,
       coalesce(successful_transactions_last_hour, 0) AS successful_transactions_last_hour,
       coalesce(failed_transactions_last_hour, 0) AS failed_transactions_last_hour,
       success_rate_percent,
       coalesce(total_nfc_scans_last_hour, 0) AS total_nfc_scans_last_hour,
       coalesce(duplicate_nfc_scans_last_hour, 0) AS duplicate_nfc_scans_last_hour,
       nfc_success_rate_percent, avg_processing_time_ms, p95_processing_time_ms,
       max_processing_time_ms, active_cards_count, total_system_balance,
       coalesce(monitoring_events_last_hour, 0) AS monitoring_events_last_hour,
       coalesce(critical_events_last_hour, 0) AS critical_events_last_hour,
       metrics_data, status_reasons
FROM system_health_snapshots
"""

LATEST_SQL = (
    _SNAPSHOTS_SQL
    + """ORDER BY snapshot_timestamp DESC, snapshot_id DESC
LIMIT 1
"""
)

HISTORY_SQL = (
    _SNAPSHOTS_SQL
    + """WHERE snapshot_timestamp >= $1
ORDER BY snapshot_timestamp, snapshot_id
LIMIT $2
"""
)

# Uses the partial index on active events by severity. Every run of an incremental rule (from
# festmon or from psql) stamps its watermark, so the newest stamp is "detection last ran". The
# failing rules (V0013) and when the schema was installed come with it: one round trip.
ACTIVE_COUNTS_SQL = """
SELECT count(*)::integer AS active,
       count(*) FILTER (WHERE severity = 'CRITICAL')::integer AS critical,
       count(*) FILTER (WHERE severity = 'HIGH')::integer AS high,
       (SELECT max(last_examined_at) FROM monitoring_detector_watermarks) AS last_detection_at,
       (SELECT initialized_at FROM monitoring_settings WHERE id = 1) AS installed_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'algorithm', f.algorithm, 'failing_since', f.failing_since,
                   'last_failed_at', f.last_failed_at, 'failures', f.consecutive_failures,
                   'error', f.last_error) ORDER BY f.failing_since, f.algorithm), '[]')::text
          FROM monitoring_rule_failures AS f) AS failing_rules,
       clock_timestamp() AS server_time
FROM monitoring_events
WHERE status IN ('OPEN', 'INVESTIGATING')
"""

# Whether festmon's schema is there and current, asked only when reading the state failed.
SCHEMA_PROBE_SQL = """
SELECT to_regclass('monitoring_detector_watermarks') IS NOT NULL AS installed,
       to_regclass('monitoring_rule_failures') IS NOT NULL AS current,
       to_regclass('monitoring_events') IS NOT NULL AS has_events_table
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
    installed_at: datetime | None = None
    failing_rules: tuple[RuleFailure, ...] = ()


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
    fields = dict(r)
    del fields["status_reasons"]
    try:
        fields["overall_health_status"] = HealthStatus(r["overall_health_status"])
    except ValueError:
        fields["overall_health_status"] = HealthStatus.UNKNOWN
    metrics = _json(r["metrics_data"])
    fields["metrics_data"] = metrics if isinstance(metrics, dict) else {}
    return HealthSnapshot(**fields)


def _reasons(value: Any) -> tuple[str, ...]:
    value = _json(value)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _rule_failures(value: Any) -> tuple[RuleFailure, ...]:
    failures: list[RuleFailure] = []
    for item in _json(value) or []:
        if not isinstance(item, dict):
            continue
        try:
            failures.append(
                RuleFailure(
                    algorithm=str(item["algorithm"]),
                    failing_since=datetime.fromisoformat(item["failing_since"]),
                    last_failed_at=datetime.fromisoformat(item["last_failed_at"]),
                    consecutive_failures=int(item["failures"]),
                    error=None if item.get("error") is None else str(item["error"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(failures)


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
            installed_at=row["installed_at"],
            failing_rules=_rule_failures(row["failing_rules"]),
        )

    async def schema_problem(self) -> str | None:
        """What is wrong with festmon's schema (cause and fix), or None when it is in place."""
        with translated():
            row = await self.pool.fetchrow(SCHEMA_PROBE_SQL)
        assert row is not None
        if not row["installed"]:
            if row["has_events_table"]:
                return (
                    "festmon schema missing (only the original's monitoring tables)"
                    " — run festmon db migrate"
                )
            return "schema missing — run festmon db migrate"
        if not row["current"]:
            return "schema out of date — run festmon db migrate"
        return None

    async def counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        with translated():
            rows = await self.pool.fetch(COUNTS_BY_HOUR_SQL, since)
        return [(r["hour"], r["severity"], r["event_count"]) for r in rows]
