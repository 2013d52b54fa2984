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
        up = 1 if state.connection is ConnectionState.CONNECTED else 0
        yield _gauge(
            "festmon_database_up",
            "1 when this process reached the database at its last refresh",
            [((), up)],
        )
        yield _gauge(
            "festmon_health_status",
            "overall health: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (as festmon health exits)",
            [((), reading.health_status.exit_code)],
        )
        leads = state.leader is not None and state.leader.is_self
        yield _gauge(
            "festmon_scheduler_leader",
            "1 when this process holds the scheduler lease",
            [((), 1 if leads else 0)],
        )
        breaker = state.breaker
        if breaker is not None:
            yield _gauge(
                "festmon_breaker_state",
                "1 for the circuit breaker's current state",
                [((breaker.name, m.value), 1 if breaker.state is m else 0) for m in BreakerState],
                ("breaker", "state"),
            )
            yield _gauge(
                "festmon_breaker_failures",
                "consecutive failures counted by the breaker",
                [((breaker.name,), breaker.failure_count)],
                ("breaker",),
            )
        if reading.active is not None:
            yield _gauge(
                "festmon_active_events",
                "OPEN and INVESTIGATING events",
                [((event_type, severity), n) for event_type, severity, n in reading.active],
                ("event_type", "severity"),
            )
        if reading.lag is not None:
            yield _gauge(
                "festmon_rule_last_success_timestamp_seconds",
                "when each incremental rule last examined its source table (Unix time)",
                [
                    ((lag.rule,), lag.last_examined_at.timestamp())
                    for lag in reading.lag
                    if lag.last_examined_at is not None
                ],
                ("rule",),
            )
            yield _gauge(
                "festmon_rule_rows_behind",
                "source table's highest id minus the rule's watermark",
                [((lag.rule, lag.source_table), lag.rows_behind) for lag in reading.lag],
                ("rule", "source_table"),
            )


def _gauge(
    name: str,
    documentation: str,
    samples: list[tuple[tuple[str, ...], float]],
    labels: tuple[str, ...] = (),
) -> GaugeMetricFamily:
    """One gauge family with its samples: (label values, value) each."""
    gauge = GaugeMetricFamily(name, documentation, labels=list(labels))
    for values, value in samples:
        gauge.add_metric(list(values), value)
    return gauge


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
