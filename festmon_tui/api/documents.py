"""The API's JSON documents: the original's keys, every value measured (none made up)."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from festmon_tui.db.api_reads import EventPage, RangeFigures
from festmon_tui.models import (
    BreakerStatus,
    Event,
    EventStatus,
    HealthSnapshot,
    MonitorState,
    Severity,
)
from festmon_tui.presentation import event_json, plain
from festmon_tui.service.documents import breaker_json, health_document, jobs_json, number


def json_default(value: Any) -> Any:
    """What json.dumps cannot encode by itself: exact decimals, ISO times, anything else as text."""
    if isinstance(value, Decimal | datetime):
        return plain(value)
    return str(value)


def _breaker_with_config(breaker: BreakerStatus | None, config: dict[str, int]) -> Any:
    body = breaker_json(breaker)
    if body is None:
        return None
    body["last_failure_time"] = body["opened_at"]
    body["config"] = config
    return body


def processor_health(
    state: MonitorState, now: datetime, breaker_config: dict[str, int]
) -> dict[str, Any]:
    """`/functions/v1/monitoring/health`: festmon's health document plus the processor's keys."""
    document = health_document(state, now)
    snapshot = state.health
    reachable = document["database"]["reachable"]
    metrics = document["system_metrics"]
    metrics["monitoring_events_last_hour"] = (
        snapshot.monitoring_events_last_hour if snapshot and reachable else None
    )
    metrics["critical_events_last_hour"] = (
        snapshot.critical_events_last_hour if snapshot and reachable else None
    )
    document["circuit_breaker"] = _breaker_with_config(state.breaker, breaker_config)
    return document


def api_health(state: MonitorState, now: datetime, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """`/functions/v1/monitoring-api/health`: components and alerts from what was measured."""
    document = health_document(state, now)
    snapshot = state.health
    reachable = document["database"]["reachable"]
    document["system_metrics"]["avg_processing_time_ms"] = (
        snapshot.avg_processing_time_ms if snapshot and reachable else None
    )
    components = [
        {
            "name": "database",
            "status": "UP" if reachable else "DOWN",
            "last_check": plain(state.refreshed_at),
            "error": state.last_error,
        },
        {
            "name": "circuit_breaker",
            "status": str(state.breaker.state) if state.breaker else "UNKNOWN",
            "last_check": now.isoformat(),
        },
    ]
    for job in jobs_json(state.jobs):
        ok = job["last_success"]
        components.append(
            {
                "name": f"{job['name']}_job",
                "status": "UNKNOWN" if ok is None else ("UP" if ok else "FAILING"),
                "last_check": job["last_started_at"],
                "response_time_ms": job["last_duration_ms"],
            }
        )
    document["components"] = components
    document["recent_alerts"] = [
        {
            "alert_id": alert["alert_id"],
            "event_id": alert["monitoring_event_id"],
            "level": alert["alert_level"],
            "message": alert["alert_message"],
            "timestamp": plain(alert["alert_timestamp"]),
            "type": alert["event_type"],
            "escalation_level": alert["escalation_level"],
            "acknowledged": alert["acknowledged_at"] is not None,
            "resolved": alert["resolved_at"] is not None
            or alert["status"] in (EventStatus.RESOLVED, EventStatus.FALSE_POSITIVE),
        }
        for alert in alerts
    ]
    return document


def events_page(
    page: EventPage, page_number: int, per_page: int, filters: dict[str, Any]
) -> dict[str, Any]:
    """`/monitoring-api/events`: real totals over every match, not over the page."""
    total_pages = (page.total + per_page - 1) // per_page
    return {
        "events": [event_json(e) for e in page.events],
        "pagination": {
            "total": page.total,
            "page": page_number,
            "per_page": per_page,
            "total_pages": total_pages,
            "has_next": page_number < total_pages,
            "has_prev": page_number > 1,
        },
        "filters_applied": filters,
        "total_critical": page.total_critical,
        "total_open": page.total_open,
    }


def integrity_score(critical: int, events: int) -> float:
    """The original's score: 100 - CRITICAL / all x 100 (100 with no events: none is critical)."""
    if events == 0:
        return 100.0
    return round(max(0.0, 100 - critical / events * 100), 2)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _latest_per_hour(snapshots: list[HealthSnapshot]) -> dict[datetime, HealthSnapshot]:
    latest: dict[datetime, HealthSnapshot] = {}
    for snap in snapshots:  # oldest first: the last one of an hour wins
        hour = snap.snapshot_timestamp.replace(minute=0, second=0, microsecond=0)
        latest[hour] = snap
    return latest


def _failure_rate(snap: HealthSnapshot | None) -> float | None:
    if snap is None or snap.success_rate_percent is None:
        return None
    return float(100 - snap.success_rate_percent)


def _duplicate_rate(snap: HealthSnapshot | None) -> float | None:
    if snap is None or not snap.total_nfc_scans_last_hour:
        return None
    return round(snap.duplicate_nfc_scans_last_hour / snap.total_nfc_scans_last_hour * 100, 2)


def _series(
    hours: list[datetime], values: dict[datetime, Any], source: str
) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": hour.isoformat(),
            "value": values.get(hour),
            "metadata": {"hour": hour.hour, "source": source},
        }
        for hour in hours
    ]


def metrics_document(
    figures: RangeFigures,
    snapshots: list[HealthSnapshot],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """`/monitoring-api/metrics`: the original's shape over [start, end], from stored data."""
    finished = figures.runs_succeeded + figures.runs_failed
    hours = _hours(start, end)
    latest = _latest_per_hour([s for s in snapshots if start <= s.snapshot_timestamp <= end])
    discrepancies: dict[datetime, int] = defaultdict(int)
    for hour, event_type, count in figures.events_by_hour:
        if event_type == "balance_discrepancy":
            discrepancies[hour] += count
    return {
        "timestamp": now.isoformat(),
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "financial_metrics": {
            "total_transaction_volume": plain(figures.transaction_volume),
            "failed_transaction_count": figures.failed_transactions,
            "transaction_failure_events": figures.failure_events,
            "balance_discrepancies_detected": figures.discrepancies,
            "total_discrepancy_amount": plain(figures.discrepancy_amount),
            "financial_integrity_score": integrity_score(figures.critical_events, figures.events),
        },
        "performance_metrics": {
            "avg_detection_time_ms": None
            if figures.avg_detection_ms is None
            else round(figures.avg_detection_ms, 1),
            "monitoring_cycles_completed": figures.runs_succeeded,
            "monitoring_errors": figures.runs_failed,
            "system_uptime_percent": None
            if finished == 0
            else round(figures.runs_succeeded / finished * 100, 2),
        },
        "trends": {
            "transaction_volume": _series(
                hours,
                {h: s.total_transactions_last_hour for h, s in latest.items()},
                "system_health_snapshots",
            ),
            "failure_rate": _series(
                hours, {h: _failure_rate(s) for h, s in latest.items()}, "system_health_snapshots"
            ),
            "processing_time": _series(
                hours,
                {h: s.avg_processing_time_ms for h, s in latest.items()},
                "system_health_snapshots",
            ),
            "balance_discrepancies": _series(
                hours, {h: discrepancies.get(h, 0) for h in hours}, "monitoring_events"
            ),
        },
    }


def _chart(label: str, hours: list[datetime], values: dict[datetime, Any]) -> dict[str, Any]:
    return {
        "labels": [hour.strftime("%H:%M") for hour in hours],
        "timestamps": [hour.isoformat() for hour in hours],
        "datasets": [{"label": label, "data": [values.get(hour) for hour in hours]}],
    }


def dashboard_document(
    state: MonitorState,
    now: datetime,
    snapshots: list[HealthSnapshot],
    counts: list[tuple[datetime, str, int]],
    latest_events: list[Event],
    open_events: int,
    recent_failures: int,
    run_share: float | None,
) -> dict[str, Any]:
    """`/monitoring-api/dashboard`: charts from the trends pane's own two reads (24 h)."""
    health = health_document(state, now)
    snapshot = state.health
    hours = _hours(now - timedelta(hours=23), now)
    latest = _latest_per_hour(snapshots)
    critical = sum(1 for e in latest_events if e.severity is Severity.CRITICAL)
    by_hour: dict[datetime, int] = defaultdict(int)
    for hour, _severity, count in counts:
        by_hour[hour] += count
    load = os.getloadavg()[0] / (os.cpu_count() or 1) * 100
    return {
        "timestamp": now.isoformat(),
        "kpis": {
            "system_health": health["status"],
            "transaction_success_rate": number(snapshot.success_rate_percent) if snapshot else None,
            "balance_integrity_score": integrity_score(critical, len(latest_events)),
            "monitoring_system_uptime": run_share,
        },
        "real_time": {
            "active_transactions": None,
            "transactions_last_hour": snapshot.total_transactions_last_hour if snapshot else None,
            "recent_failures": recent_failures,
            "open_monitoring_events": open_events,
            "system_load_percent": round(load, 1),
        },
        "charts": {
            "transaction_volume_24h": _chart(
                "Transactions in the hour",
                hours,
                {h: s.total_transactions_last_hour for h, s in latest.items()},
            ),
            "failure_rate_trend": _chart(
                "Failure rate %", hours, {h: _failure_rate(s) for h, s in latest.items()}
            ),
            "events_by_hour": _chart("Monitoring events", hours, dict(by_hour)),
            "nfc_duplicate_rate": _chart(
                "Duplicate NFC scans %", hours, {h: _duplicate_rate(s) for h, s in latest.items()}
            ),
        },
        "recent_events": [event_json(e) for e in latest_events[:10]],
        "system_status": {
            "database_connection": health["database"]["reachable"],
            "last_successful_check": health["last_detection"]["at"],
            "circuit_breakers": {
                state.breaker.name: str(state.breaker.state) if state.breaker else None
            }
            if state.breaker
            else {},
            "scheduler": health["scheduler"],
            "jobs": jobs_json(state.jobs),
        },
    }
