"""The health (SPEC §6.2), status (§6.3) and cycle (§6.4) JSON documents, built from state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from festmon_tui import SERVICE_NAME, __version__
from festmon_tui.models import (
    BreakerStatus,
    CycleResult,
    DetectionAlarm,
    DetectionAlarmKind,
    HealthSnapshot,
    HealthStatus,
    JobStatus,
    LeaderInfo,
    MonitorState,
    RuleFailure,
)
from festmon_tui.settings import Settings

# Rates below this are a WARNING (SPEC §6.2); the same default as the settings row.
RATE_WARNING_PERCENT = Decimal("99")
# Detection that has not run for this many critical intervals is stale: nothing is watching.
STALE_AFTER_INTERVALS = 3
# A rule that failed this many runs in a row is failing, not unlucky (one lock timeout is not).
RULE_FAILING_AFTER_RUNS = 2


def _duration(delta: timedelta) -> str:
    """A rough, readable length of time: '45 s', '3 min', '2 h', '4 d'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _one_line(text: str | None, limit: int = 120) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else "unknown error"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def detection_alarms(
    failing_rules: Iterable[RuleFailure],
    last_detection_at: datetime | None,
    installed_at: datetime | None,
    now: datetime,
    critical_interval_ms: int,
    leader: LeaderInfo | None,
    timezone: tzinfo,
) -> tuple[DetectionAlarm, ...]:
    """Why detection is not happening although the database answers (issue 13.3).

    * a rule that failed RULE_FAILING_AFTER_RUNS runs in a row (monitoring_rule_failures);
    * no rule has run for STALE_AFTER_INTERVALS critical intervals (or since the schema was
      installed): no scheduler is running, or the one holding the lease cannot run its jobs.
      This process's own scheduler gets that long after gaining the lease for its first runs.
    """
    alarms: list[DetectionAlarm] = []
    # Rules failing for the same reason (a missing payment table fails them all) are one alarm.
    by_error: dict[str, list[RuleFailure]] = {}
    for failure in failing_rules:
        if failure.consecutive_failures >= RULE_FAILING_AFTER_RUNS:
            by_error.setdefault(_one_line(failure.error), []).append(failure)
    for error, failures in by_error.items():
        first = min(f.failing_since for f in failures)
        since = first.astimezone(timezone)
        names = [f.algorithm for f in failures]
        if len(names) == 1:
            message = f"rule {names[0]} failing since {since:%H:%M}: {error}"
        else:  # the cause before the list, so that a narrow header still shows it
            message = (
                f"{len(names)} rules failing since {since:%H:%M}: {error} ({', '.join(names)})"
            )
        alarms.append(DetectionAlarm(DetectionAlarmKind.RULE_FAILING, message, first))
    stale = timedelta(milliseconds=critical_interval_ms * STALE_AFTER_INTERVALS)
    reference = last_detection_at or installed_at
    just_started = (
        leader is not None
        and leader.is_self
        and leader.since is not None
        and now - leader.since < stale
    )
    if reference is not None and now - reference > stale and not just_started:
        idle = _duration(now - reference)
        if leader is None or leader.holder_id is None:
            message = (
                f"no scheduler has run for {idle} — start festmon (the dashboard or"
                " festmon run --headless)"
            )
        else:
            message = (
                f"detection has not run for {idle} although {leader.label} holds the"
                " scheduler lease — see its breaker and jobs"
            )
        alarms.append(DetectionAlarm(DetectionAlarmKind.NOT_SCHEDULED, message, reference))
    return tuple(alarms)


def evaluate_health(
    snapshot: HealthSnapshot | None,
    active_critical: int,
    active_high: int,
    last_detection_at: datetime | None,
    now: datetime,
    critical_interval_ms: int,
    alarms: tuple[DetectionAlarm, ...] = (),
) -> tuple[HealthStatus, tuple[str, ...]]:
    """Overall status now: live active-event counts plus the latest snapshot's rates.

    Not detecting (alarms) is CRITICAL, its reasons first: a calm picture from a monitor that
    is not watching is the worst answer it can give. A missing schema is UNKNOWN (nothing can
    be measured); the state reader reports it without calling this.
    """
    reasons: list[str] = [a.message for a in alarms]
    status = HealthStatus.HEALTHY
    if any(a.kind is DetectionAlarmKind.SCHEMA_MISSING for a in alarms):
        return HealthStatus.UNKNOWN, tuple(reasons)
    if alarms:
        status = HealthStatus.CRITICAL
    if active_critical:
        status = HealthStatus.CRITICAL
        reasons.append(f"{active_critical} active CRITICAL event(s)")
    if active_high:
        reasons.append(f"{active_high} active HIGH event(s)")
    if snapshot is not None:
        for label, rate in (
            ("transaction success rate", snapshot.success_rate_percent),
            ("NFC success rate", snapshot.nfc_success_rate_percent),
        ):
            if rate is not None and rate < RATE_WARNING_PERCENT:
                reasons.append(f"{label} {rate} % < {RATE_WARNING_PERCENT} %")
    stale_s = critical_interval_ms / 1000 * STALE_AFTER_INTERVALS
    # An alarm already says why detection is not running: no second guess about it.
    if not alarms and last_detection_at is None:
        reasons.append("detection has never run (is a festmon scheduler running?)")
    elif not alarms and (age := (now - (last_detection_at or now)).total_seconds()) > stale_s:
        reasons.append(f"detection last ran {age:.0f} s ago (is a festmon scheduler running?)")
    if status is HealthStatus.HEALTHY and reasons:
        status = HealthStatus.WARNING
    return status, tuple(reasons)


def number(value: Decimal | float | int | None) -> float | int | None:
    """A measured figure as a JSON number (None stays None: no 0 -> 100 fallback)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def breaker_json(status: BreakerStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {
        "name": status.name,
        "state": str(status.state),
        "failure_count": status.failure_count,
        "last_error": status.last_error,
        "opened_at": _iso(status.opened_at),
        "seconds_to_next_probe": (
            None if status.seconds_to_probe is None else round(status.seconds_to_probe, 1)
        ),
        "half_open_calls": status.half_open_calls,
    }


def leader_json(leader: LeaderInfo | None, now: datetime) -> dict[str, Any] | None:
    if leader is None or leader.holder_id is None:
        return None
    return {
        "holder": leader.label.removesuffix(" (this process)"),
        "host": leader.host,
        "pid": leader.pid,
        "term": leader.term,
        "since": _iso(leader.since),
        "expires_at": _iso(leader.expires_at),
        "is_this_process": leader.is_self,
        "uptime_seconds": None
        if leader.since is None
        else int((now - leader.since).total_seconds()),
    }


def jobs_json(jobs: tuple[JobStatus, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": job.name,
            "interval_ms": job.interval_ms,
            "running": job.running,
            "last_started_at": _iso(job.last_started_at),
            "last_duration_ms": job.last_duration_ms,
            "last_success": job.last_success,
            "last_result": job.last_result,
            "next_run_at": _iso(job.next_run_at),
        }
        for job in jobs
    ]


def reads_json(state: MonitorState) -> dict[str, Any]:
    """Where the reads come from (issue 18): the primary, or a hot standby and how far behind."""
    replica = state.replica
    if replica is None:
        return {"from": "primary"}
    return {
        "from": replica.reads_from,
        "lag_seconds": replica.lag_s,
        "standby_error": replica.standby_error,
        "actions_unavailable": replica.actions_unavailable,
        "pending_replication": list(replica.pending_replication),
    }


def reads_line(reads: dict[str, Any]) -> str:
    """`reads: standby (lag 2 s)` for the text of `festmon status`."""
    line = f"reads: {reads['from']}"
    if reads.get("lag_seconds") is not None:
        line += f" (lag {reads['lag_seconds']} s)"
    if reads.get("standby_error"):
        line += f"; standby away: {reads['standby_error']}"
    if reads.get("actions_unavailable"):
        line += f"; actions unavailable: {reads['actions_unavailable']}"
    return line


def detection_json(state: MonitorState) -> dict[str, Any]:
    """Whether festmon is detecting, and if not why (issue 13.3); unknown while unreachable."""
    reachable = state.connection.value == "CONNECTED"
    return {
        "detecting": reachable and not state.detection_alarms,
        "alarms": [
            {"kind": str(a.kind), "message": a.message, "since": _iso(a.since)}
            for a in state.detection_alarms
        ]
        if reachable
        else [],
    }


def health_document(state: MonitorState, now: datetime) -> dict[str, Any]:
    """`festmon health --json`: the original's keys first, festmon's additions after."""
    snapshot = state.health
    leader = state.leader if state.leader and state.leader.holder_id else None
    reachable = state.connection.value == "CONNECTED"
    uptime = 0
    if leader is not None and leader.since is not None:
        uptime = max(0, int((now - leader.since).total_seconds()))
    last = state.last_detection_at
    return {
        "status": str(state.health_status if reachable else HealthStatus.UNKNOWN),
        "timestamp": now.isoformat(),
        "uptime_seconds": uptime,
        "system_metrics": {
            "transactions_last_hour": (
                snapshot.total_transactions_last_hour if snapshot and reachable else None
            ),
            "success_rate_percent": (
                number(snapshot.success_rate_percent) if snapshot and reachable else None
            ),
            "active_monitoring_events": state.active_events if reachable else None,
            "critical_events_count": state.active_critical_events if reachable else None,
        },
        "reasons": list(state.health_reasons) if reachable else [],
        "detection": detection_json(state),
        "database": {
            "label": state.database_label,
            "reachable": reachable,
            "error": state.last_error,
            "reads": reads_json(state),
        },
        "snapshot": None
        if snapshot is None
        else {
            "snapshot_id": snapshot.snapshot_id,
            "timestamp": _iso(snapshot.snapshot_timestamp),
            "age_seconds": int((now - snapshot.snapshot_timestamp).total_seconds()),
            "status": str(snapshot.overall_health_status),
        },
        "last_detection": {
            "at": _iso(last),
            "age_seconds": None if last is None else int((now - last).total_seconds()),
        },
        "scheduler": {"leader": leader_json(leader, now)},
        "circuit_breaker": breaker_json(state.breaker),
    }


def status_document(settings: Settings, state: MonitorState, now: datetime) -> dict[str, Any]:
    """`festmon status --json`: the original's shape with the values in force, plus state."""
    return {
        "service": SERVICE_NAME,
        "version": __version__,
        "environment": str(settings.environment),
        "config": {
            "intervals": {
                "critical_checks": settings.monitoring_interval_critical,
                "medium_checks": settings.monitoring_interval_medium,
                "health_checks": settings.monitoring_interval_health,
                "cleanup": settings.monitoring_interval_cleanup,
            },
            "circuit_breaker": {
                "failure_threshold": settings.monitoring_circuit_failure_threshold,
                "recovery_timeout_ms": settings.monitoring_circuit_recovery_timeout_ms,
                "half_open_max_calls": settings.monitoring_circuit_half_open_max_calls,
                "timeout_ms": settings.monitoring_circuit_timeout_ms,
            },
        },
        "database": {
            "label": state.database_label,
            "connection": str(state.connection),
            "error": state.last_error,
            "live_updates": state.live_updates,
            "reads": reads_json(state),
        },
        "scheduler": {
            "leader": leader_json(state.leader, now),
            "this_process_schedules": state.scheduler_enabled,
            "jobs": jobs_json(state.jobs),
            "circuit_breaker": breaker_json(state.breaker),
            "last_detection_at": _iso(state.last_detection_at),
        },
        "detection": detection_json(state),
    }


def cycle_document(result: CycleResult) -> dict[str, Any]:
    """`festmon cycle --json`: the database's document with the measured duration."""
    document = dict(result.document)
    document["cycle_duration_seconds"] = result.cycle_duration_seconds
    return document
