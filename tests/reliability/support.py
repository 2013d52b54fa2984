"""Helpers of the fault tests: a service under observation, bounded waits, expected events."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import BreakerState, ConnectionState
from festmon_tui.scheduler.runner import JobRun
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from tests.reliability import dataset

# Small thresholds so every SPEC §7 transition happens within seconds. The lease outlives the
# breaker timeout, so a stalled call is counted by the breaker before the leader steps down.
FAULT_SETTINGS: dict[str, Any] = {
    "monitoring_interval_critical": 200,
    "monitoring_interval_medium": 1000,
    "monitoring_interval_health": 1000,
    "monitoring_lease_ttl_ms": 20000,
    "monitoring_poll_interval_ms": 200,
    "monitoring_circuit_failure_threshold": 2,
    "monitoring_circuit_recovery_timeout_ms": 1000,
    "monitoring_circuit_half_open_max_calls": 1,
    "monitoring_circuit_timeout_ms": 1500,
    "monitoring_connect_timeout_ms": 1000,
    "monitoring_statement_timeout_ms": 1500,
}

FESTMON_WAITING_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'festmon' AND wait_event_type = 'Lock' AND datname = current_database()
"""


async def until(condition: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Wait until `condition()` (or the coroutine it returns) is truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class RunLog:
    """Every job run the service reported, in order."""

    runs: list[tuple[float, JobRun]] = field(default_factory=list)

    def __call__(self, run: JobRun) -> None:
        self.runs.append((time.monotonic(), run))

    def mark(self) -> float:
        return time.monotonic()

    def since(self, mark: float) -> list[JobRun]:
        return [run for at, run in self.runs if at >= mark]

    def succeeded_since(self, mark: float, name: str) -> int:
        return sum(1 for r in self.since(mark) if r.name == name and r.success)


@dataclass
class Observed:
    """A running service with its job log and every breaker state it passed through."""

    service: PostgresMonitorService
    log: RunLog
    breaker_states: list[BreakerState]
    connection_states: list[ConnectionState]

    @property
    def breaker(self) -> BreakerState:
        return self.service.breaker.state

    @property
    def connection(self) -> ConnectionState:
        return self.service.state.connection

    def alive(self) -> bool:
        """The service's own tasks are all still running (nothing crashed or gave up)."""
        scheduler = self.service.scheduler
        tasks = self.service._tasks  # the supervisor and the listener
        return (
            scheduler is not None
            and scheduler.running
            and bool(tasks)
            and not any(t.done() for t in tasks)
        )

    def describe(self) -> str:
        """What happened, for a failure message."""
        runs = "; ".join(
            f"{r.name} {'skip' if r.skipped else r.success} {r.duration_ms}ms {r.result[:60]}"
            for _, r in self.log.runs[-8:]
        )
        return f"breaker {[str(s) for s in self.breaker_states]}, last runs: {runs}"

    async def recovered(self) -> bool:
        state = self.service.state
        return (
            self.breaker is BreakerState.CLOSED
            and state.connection is ConnectionState.CONNECTED
            and state.last_error is None
        )


@asynccontextmanager
async def observed_service(dsn: str, **overrides: Any) -> AsyncIterator[Observed]:
    """A scheduling service on `dsn` with FAULT_SETTINGS; stopped (bounded) at the end."""
    settings = load_settings({"database_url": dsn, **FAULT_SETTINGS, **overrides}, env_file=None)
    log = RunLog()
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), on_job_run=log
    )
    watched = Observed(service, log, [], [])
    notify = service.breaker.on_change

    def on_breaker(status: Any) -> None:
        if not watched.breaker_states or watched.breaker_states[-1] is not status.state:
            watched.breaker_states.append(status.state)
        if notify is not None:
            notify(status)

    service.breaker.on_change = on_breaker

    async def follow() -> None:
        async for _change in service.changes():
            now = service.state.connection
            if not watched.connection_states or watched.connection_states[-1] is not now:
                watched.connection_states.append(now)

    follower = asyncio.create_task(follow())
    await service.start()
    try:
        yield watched
    finally:
        started = time.monotonic()
        await asyncio.wait_for(service.stop(), 10)
        follower.cancel()
        # SIGHUP / systemd stop must be quick even after a fault (SPEC §8: exit within 2 s;
        # stop() is bounded at about 1.5 s, the rest is slack for a loaded CI machine).
        assert time.monotonic() - started < 3.0, "stopping the service took too long"


@dataclass(frozen=True)
class Expected:
    """The events a fault-free run finds after each batch."""

    after_first: Counter[tuple[str, str]]
    after_both: Counter[tuple[str, str]]


def two_batches() -> tuple[dataset.Batch, dataset.Batch]:
    """Batch A eight minutes ago, batch B four minutes ago (inside every rule's window)."""
    now = datetime.now(UTC)
    return dataset.batch("A", now - timedelta(minutes=8)), dataset.batch(
        "B", now - timedelta(minutes=4)
    )


async def expected_events(admin_dsn: str, first: dataset.Batch, second: dataset.Batch) -> Expected:
    """Run the detection functions fault-free over the same batches on a reference database."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await dataset.insert(conn, first)
        after_first = await dataset.detect_fault_free(conn)
        await dataset.insert(conn, second)
        after_both = await dataset.detect_fault_free(conn)
    finally:
        await conn.close()
    found = {algorithm for algorithm, _ in after_both}
    assert found == set(dataset.RULES), f"the reference run misses {set(dataset.RULES) - found}"
    return Expected(after_first, after_both)


async def events_of(admin_dsn: str) -> Counter[tuple[str, str]]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return await dataset.events(conn)
    finally:
        await conn.close()


async def settles_on(
    watched: Observed, admin_dsn: str, expected: Counter[tuple[str, str]], timeout_s: float
) -> None:
    """The events reach `expected`, and stay there over further critical and medium runs."""
    latest: list[Counter[tuple[str, str]]] = [Counter()]

    async def matches() -> bool:
        latest[0] = await events_of(admin_dsn)
        return latest[0] == expected

    try:
        await until(matches, timeout_s, "the events of a fault-free run")
    except AssertionError:
        missing = expected - latest[0]
        extra = latest[0] - expected
        raise AssertionError(
            f"events differ: missing {dict(missing)}, extra {dict(extra)}"
        ) from None
    mark = watched.log.mark()
    await until(
        lambda: (
            watched.log.succeeded_since(mark, "critical") >= 2
            and watched.log.succeeded_since(mark, "medium") >= 1
        ),
        timeout_s,
        "two more critical runs and one medium run",
    )
    assert await events_of(admin_dsn) == expected, "later runs changed the events (duplicates?)"


async def hold_mid_cycle(admin_dsn: str, table: str = "monitoring_detector_watermarks") -> Any:
    """Lock one of festmon's tables so the next critical cycle stays in flight; returns the lock."""
    blocker = await asyncpg.connect(admin_dsn)
    await blocker.execute(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE")
    await until(
        lambda: blocker.fetchval(FESTMON_WAITING_SQL), 10, "a festmon cycle waiting on the lock"
    )
    return blocker
