"""`/metrics` in the Prometheus text format: job runs this process made, and festmon's state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from festmon_tui.db.api_reads import RuleLag
from festmon_tui.models import BreakerState, ConnectionState, HealthStatus, MonitorState
from festmon_tui.scheduler.runner import JobRun

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Critical detection takes tens of ms, a full balance sweep seconds, a stalled one the timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def outcome(run: JobRun) -> str:
    return "skipped" if run.skipped else ("ok" if run.success else "failed")


@dataclass
class Reading:
    """What the database said for this scrape (None: it could not be asked)."""

    state: MonitorState
    active: list[tuple[str, str, int]] | None = None
    lag: list[RuleLag] | None = None
    health_status: HealthStatus = HealthStatus.UNKNOWN
    extra: dict[str, float] = field(default_factory=dict)


class _StateCollector(Collector):
    """Reads the Reading set just before each exposition (no I/O inside collect())."""

    def __init__(self) -> None:
        self.reading: Reading | None = None

    def collect(self) -> Iterator[Metric]:
        reading = self.reading
        if reading is None:
            return
        state = reading.state
        yield GaugeMetricFamily(
            "festmon_database_up",
            "1 when this process reached the database at its last refresh",
            value=1 if state.connection is ConnectionState.CONNECTED else 0,
        )
        health = GaugeMetricFamily(
            "festmon_health_status",
            "overall health: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (as festmon health exits)",
        )
        health.add_metric([], reading.health_status.exit_code)
        yield health
        leader = GaugeMetricFamily(
            "festmon_scheduler_leader", "1 when this process holds the scheduler lease"
        )
        leader.add_metric([], 1 if state.leader is not None and state.leader.is_self else 0)
        yield leader
        if state.breaker is not None:
            breaker = GaugeMetricFamily(
                "festmon_breaker_state",
                "1 for the circuit breaker's current state",
                labels=["breaker", "state"],
            )
            for member in BreakerState:
                breaker.add_metric(
                    [state.breaker.name, member.value], 1 if state.breaker.state is member else 0
                )
            yield breaker
            failures = GaugeMetricFamily(
                "festmon_breaker_failures",
                "consecutive failures counted by the breaker",
                labels=["breaker"],
            )
            failures.add_metric([state.breaker.name], state.breaker.failure_count)
            yield failures
        if reading.active is not None:
            active = GaugeMetricFamily(
                "festmon_active_events",
                "OPEN and INVESTIGATING events",
                labels=["event_type", "severity"],
            )
            for event_type, severity, count in reading.active:
                active.add_metric([event_type, severity], count)
            yield active
        if reading.lag is not None:
            last = GaugeMetricFamily(
                "festmon_rule_last_success_timestamp_seconds",
                "when each incremental rule last examined its source table (Unix time)",
                labels=["rule"],
            )
            behind = GaugeMetricFamily(
                "festmon_rule_rows_behind",
                "source table's highest id minus the rule's watermark",
                labels=["rule", "source_table"],
            )
            for lag in reading.lag:
                if lag.last_examined_at is not None:
                    last.add_metric([lag.rule], lag.last_examined_at.timestamp())
                behind.add_metric([lag.rule, lag.source_table], lag.rows_behind)
            yield last
            yield behind


class Exposition:
    """One registry per API server: job runs observed here plus the state collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.runs = Counter(
            "festmon_job_runs",
            "scheduled job runs made by this process",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "festmon_job_duration_seconds",
            "duration of the scheduled job runs made by this process",
            ["job", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._state = _StateCollector()
        self.registry.register(self._state)

    def observe(self, run: JobRun) -> None:
        """Record one job run (the service's on_job_run hook)."""
        labels = (run.name, outcome(run))
        self.runs.labels(*labels).inc()
        self.durations.labels(*labels).observe(run.duration_ms / 1000)

    def render(self, reading: Reading) -> bytes:
        # No await between setting the reading and rendering: concurrent scrapes cannot mix.
        self._state.reading = reading
        try:
            return generate_latest(self.registry)
        finally:
            self._state.reading = None
