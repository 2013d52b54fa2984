"""The job runner with fake jobs: intervals, no self-overlap, recorded runs, the breaker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from festmon_tui.db.detection import JobOutcome, summarize_detection
from festmon_tui.db.lease import LeaseFence
from festmon_tui.models import BreakerState
from festmon_tui.scheduler.breaker import BreakerConfig, CircuitBreaker
from festmon_tui.scheduler.jobs import CRITICAL, JobSpec, build_jobs
from festmon_tui.scheduler.runner import JobRun, JobRunner
from festmon_tui.settings import load_settings
from tests.clock import FakeClock

FENCE = LeaseFence("me", 3)


def breaker(clock: FakeClock, threshold: int = 5) -> CircuitBreaker:
    config = BreakerConfig(failure_threshold=threshold, timeout_ms=5_000)
    return CircuitBreaker("db", config, clock=clock, wall_clock=clock.wall_clock)


def runner_on(clock: FakeClock, spec: JobSpec, guard: CircuitBreaker, runs: Runs) -> JobRunner:
    """A runner whose timetable runs in the fake clock's time, not the machine's."""
    return JobRunner(
        (spec,),
        guard,
        clock=clock,
        wall_clock=clock.wall_clock,
        sleep=clock.sleep,
        on_run=runs.append,
    )


class Runs(list[JobRun]):
    """Collects finished runs; after `limit` runs the clock freezes, so the runner stops there."""

    def __init__(self, clock: FakeClock, limit: int) -> None:
        super().__init__()
        self.clock = clock
        self.limit = limit

    def append(self, run: JobRun) -> None:
        super().append(run)
        if len(self) == self.limit:
            self.clock.freeze()


async def run_until_parked(runner: JobRunner, clock: FakeClock) -> None:
    """Run the runner until it (or its job) sleeps on the frozen clock, then stop it."""
    task = asyncio.create_task(runner.run(FENCE))
    parked = asyncio.create_task(clock.parked())
    done, _ = await asyncio.wait({task, parked}, return_when=asyncio.FIRST_COMPLETED)
    assert parked in done, task.exception()  # the runner must not have ended on its own
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_job_runs_at_its_interval_and_never_overlaps_itself() -> None:
    clock = FakeClock()
    active = 0
    overlaps = 0
    starts: list[float] = []

    async def job(_fence: LeaseFence | None) -> JobOutcome:
        nonlocal active, overlaps
        starts.append(clock())
        active += 1
        overlaps += active > 1
        await clock.sleep(0.25)  # longer than the interval: the next run waits for this one
        active -= 1
        return JobOutcome(True, "ok")

    runs = Runs(clock, limit=4)
    spec = JobSpec("critical", 100, 0, job)
    await run_until_parked(runner_on(clock, spec, breaker(clock), runs), clock)

    assert overlaps == 0
    assert all(r.success and r.term == 3 for r in runs)
    assert [r.duration_ms for r in runs] == [250] * 4
    # Each run starts the moment the previous one ends, not one interval after it started.
    assert starts[:5] == [1000.0, 1000.25, 1000.5, 1000.75, 1001.0]


async def test_each_run_records_start_duration_result_and_the_next_run() -> None:
    clock = FakeClock()

    async def job(_fence: LeaseFence | None) -> JobOutcome:
        clock.advance(0.5)
        return JobOutcome(True, "2 event(s) created")

    runs = Runs(clock, limit=1)
    spec = JobSpec("critical", 60_000, 0, job)
    runner = runner_on(clock, spec, breaker(clock), runs)
    task = asyncio.create_task(runner.run(FENCE))
    await clock.parked()  # the runner sleeps until the next run: its status is complete
    status = runner.statuses()[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert clock.sleeps == [59.5]
    assert status.last_success is True
    assert status.last_result == "2 event(s) created"
    assert status.last_duration_ms == 500
    assert status.last_started_at == datetime(2026, 7, 4, 18, 0, tzinfo=UTC)
    assert status.next_run_at is not None
    assert status.next_run_at - status.last_started_at == timedelta(seconds=60)


async def test_a_reported_failure_counts_for_the_breaker_which_then_skips_runs() -> None:
    clock = FakeClock()

    async def failing(_fence: LeaseFence | None) -> JobOutcome:
        return summarize_detection({"success": False, "rules": {"r": {"error": "boom"}}})

    runs = Runs(clock, limit=3)
    guard = breaker(clock, threshold=2)
    spec = JobSpec("critical", 1, 0, failing)
    await run_until_parked(runner_on(clock, spec, guard, runs), clock)

    assert [r.skipped for r in runs[:3]] == [False, False, True]
    assert "failed: r: boom" in runs[0].result
    assert guard.state is BreakerState.OPEN


async def test_a_backlog_makes_the_job_run_again_at_once() -> None:
    clock = FakeClock()
    calls = 0

    async def backlogged(_fence: LeaseFence | None) -> JobOutcome:
        nonlocal calls
        calls += 1
        return JobOutcome(True, "batch", backlog=calls < 3)

    runs = Runs(clock, limit=3)
    spec = JobSpec("critical", 60_000, 0, backlogged)
    await run_until_parked(runner_on(clock, spec, breaker(clock), runs), clock)

    assert calls == 3
    # 50 ms (the floor between two runs) after each backlogged batch, then the interval.
    assert clock.sleeps == pytest.approx([0.05, 0.05, 60.0])


def test_the_jobs_use_the_intervals_from_the_settings() -> None:
    settings = load_settings(
        {"monitoring_interval_critical": 1000, "monitoring_interval_cleanup": 5000}, env_file=None
    )

    class NoDatabase:
        async def run_critical(self, fence: LeaseFence | None) -> JobOutcome: ...
        async def run_medium(self, fence: LeaseFence | None) -> JobOutcome: ...
        async def run_health(self, fence: LeaseFence | None) -> JobOutcome: ...
        async def run_cleanup(self, fence: LeaseFence | None, days: int) -> JobOutcome: ...

    jobs = {job.name: job for job in build_jobs(settings, NoDatabase())}
    assert jobs[CRITICAL].interval_ms == 1000 and jobs[CRITICAL].first_delay_ms == 0
    assert (jobs["medium"].interval_ms, jobs["health"].interval_ms) == (120_000, 300_000)
    assert jobs["cleanup"].interval_ms == 5000 and jobs["cleanup"].first_delay_ms == 5000


class LedgerBuild:
    """The job database of a first run on a large log: the critical job leaves the card
    ledger's build to the medium job (ledger_build_waiting) while `waiting` says so."""

    def __init__(self, clock: FakeClock, waiting: list[bool], medium_ok: bool = True) -> None:
        self.clock = clock
        self.waiting = waiting
        self.medium_ok = medium_ok
        self.calls: list[tuple[str, float]] = []

    async def run_critical(self, fence: LeaseFence | None) -> JobOutcome:
        self.calls.append(("critical", self.clock()))
        return JobOutcome(True, "critical", ledger_build_waiting=self.waiting.pop(0))

    async def run_medium(self, fence: LeaseFence | None) -> JobOutcome:
        self.calls.append(("medium", self.clock()))
        return JobOutcome(self.medium_ok, "medium")

    async def run_medium_catch_up(self, fence: LeaseFence | None) -> JobOutcome:
        raise AssertionError("no backlog was reported")

    async def run_health(self, fence: LeaseFence | None) -> JobOutcome:
        return JobOutcome(True, "health")

    async def run_cleanup(self, fence: LeaseFence | None, retention_days: int) -> JobOutcome:
        return JobOutcome(True, "cleanup")


async def _run_jobs_until(clock: FakeClock, database: LedgerBuild, runs: int) -> None:
    """Run build_jobs' four jobs on a clock that stands still (every sleep parks) until
    `runs` job calls were made, then stop the runner."""
    clock.freeze()
    jobs = build_jobs(load_settings({}, env_file=None), database)
    done = asyncio.Event()

    def record(_run: JobRun) -> None:
        if len(database.calls) >= runs:
            done.set()

    runner = JobRunner(
        jobs,
        breaker(clock),
        clock=clock,
        wall_clock=clock.wall_clock,
        sleep=clock.sleep,
        on_run=record,
    )
    task = asyncio.create_task(runner.run(FENCE))
    async with asyncio.timeout(5):
        await done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_ledger_build_left_by_the_critical_job_starts_the_medium_job_at_once() -> None:
    """Issue 19.3: a card ledger build the critical job leaves to the medium job (a rebuild
    of the unlogged ledger after a crash, a changed transaction type setting) waited for the
    medium job's next run, up to its interval (120 s); here its first delay (15 s)."""
    clock = FakeClock()
    database = LedgerBuild(clock, waiting=[True])

    await _run_jobs_until(clock, database, runs=2)

    # No time passed: the medium job did not wait for its first delay (15 s).
    assert database.calls == [("critical", 1000.0), ("medium", 1000.0)]


async def test_without_a_waiting_build_the_medium_job_keeps_its_first_delay() -> None:
    clock = FakeClock()
    database = LedgerBuild(clock, waiting=[False, False])
    jobs = {spec.name: spec for spec in build_jobs(load_settings({}, env_file=None), database)}

    await jobs[CRITICAL].call(FENCE)

    wake = jobs["medium"].wake
    assert wake is not None and not wake.is_set()
    assert jobs["medium"].first_delay_ms == 15_000
