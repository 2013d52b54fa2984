"""The job runner with fake jobs: intervals, no self-overlap, recorded runs, the breaker."""

from __future__ import annotations

import asyncio

import pytest

from festmon_tui.db.detection import JobOutcome, summarize_detection
from festmon_tui.db.lease import LeaseFence
from festmon_tui.models import BreakerState
from festmon_tui.scheduler.breaker import BreakerConfig, CircuitBreaker
from festmon_tui.scheduler.jobs import CRITICAL, JobSpec, build_jobs
from festmon_tui.scheduler.runner import JobRun, JobRunner
from festmon_tui.settings import load_settings

FENCE = LeaseFence("me", 3)


def breaker(threshold: int = 5) -> CircuitBreaker:
    return CircuitBreaker("db", BreakerConfig(failure_threshold=threshold, timeout_ms=5_000))


class Runs(list[JobRun]):
    """Collects finished runs; `wait(n)` returns once n runs were recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, run: JobRun) -> None:
        super().append(run)
        self.changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5):
            while True:
                if len(self) >= count:
                    return
                self.changed.clear()
                await self.changed.wait()


async def test_a_job_runs_at_its_interval_and_never_overlaps_itself() -> None:
    active = 0
    overlaps = 0

    async def job(_fence: LeaseFence | None) -> JobOutcome:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        await asyncio.sleep(0.03)  # longer than the interval: the next run waits for this one
        active -= 1
        return JobOutcome(True, "ok")

    runs = Runs()
    runner = JobRunner((JobSpec("critical", 10, 0, job),), breaker(), on_run=runs.append)
    task = asyncio.create_task(runner.run(FENCE))
    await runs.wait(4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert overlaps == 0
    assert all(r.success and r.term == 3 for r in runs)


async def test_each_run_records_start_duration_result_and_the_next_run() -> None:
    async def job(_fence: LeaseFence | None) -> JobOutcome:
        return JobOutcome(True, "2 event(s) created")

    runs = Runs()
    runner = JobRunner((JobSpec("critical", 60_000, 0, job),), breaker(), on_run=runs.append)
    task = asyncio.create_task(runner.run(FENCE))
    await runs.wait(1)
    await asyncio.sleep(0)  # the loop sets next_run_at right after recording the run
    status = runner.statuses()[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert status.last_success is True
    assert status.last_result == "2 event(s) created"
    assert status.last_duration_ms is not None and status.last_duration_ms >= 0
    assert status.last_started_at is not None and status.next_run_at is not None
    assert 59 < (status.next_run_at - status.last_started_at).total_seconds() <= 60.5


async def test_a_reported_failure_counts_for_the_breaker_which_then_skips_runs() -> None:
    async def failing(_fence: LeaseFence | None) -> JobOutcome:
        return summarize_detection({"success": False, "rules": {"r": {"error": "boom"}}})

    runs = Runs()
    guard = breaker(threshold=2)
    runner = JobRunner((JobSpec("critical", 1, 0, failing),), guard, on_run=runs.append)
    task = asyncio.create_task(runner.run(FENCE))
    await runs.wait(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.skipped for r in runs[:3]] == [False, False, True]
    assert "failed: r: boom" in runs[0].result
    assert guard.state is BreakerState.OPEN


async def test_a_backlog_makes_the_job_run_again_at_once() -> None:
    calls = 0

    async def backlogged(_fence: LeaseFence | None) -> JobOutcome:
        nonlocal calls
        calls += 1
        return JobOutcome(True, "batch", backlog=calls < 3)

    runs = Runs()
    runner = JobRunner((JobSpec("critical", 60_000, 0, backlogged),), breaker(), on_run=runs.append)
    task = asyncio.create_task(runner.run(FENCE))
    await runs.wait(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 3


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
