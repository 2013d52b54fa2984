"""The medium job: a run that leaves a backlog is followed by a catch-up of only that part."""

from __future__ import annotations

from festmon_tui.db.detection import JobOutcome
from festmon_tui.db.lease import LeaseFence
from festmon_tui.scheduler.jobs import MEDIUM, build_jobs
from festmon_tui.settings import load_settings

FENCE = LeaseFence("me", 3)


class Database:
    """Records which medium call the job made; the full runs report the scripted backlogs."""

    def __init__(self, backlogs: list[bool]) -> None:
        self.backlogs = backlogs
        self.calls: list[str] = []

    async def run_critical(self, fence: LeaseFence | None) -> JobOutcome:
        raise AssertionError("not called")

    async def run_medium(self, fence: LeaseFence | None) -> JobOutcome:
        self.calls.append("full")
        return JobOutcome(True, "full", backlog=self.backlogs.pop(0))

    async def run_medium_catch_up(self, fence: LeaseFence | None) -> JobOutcome:
        self.calls.append("catch-up")
        return JobOutcome(True, "catch-up", backlog=self.backlogs.pop(0))

    async def run_health(self, fence: LeaseFence | None) -> JobOutcome:
        raise AssertionError("not called")

    async def run_cleanup(self, fence: LeaseFence | None, retention_days: int) -> JobOutcome:
        raise AssertionError("not called")


async def test_after_a_backlog_the_medium_job_catches_up_then_runs_in_full_again() -> None:
    database = Database([True, True, False, False, True])
    jobs = {job.name: job for job in build_jobs(load_settings({}, env_file=None), database)}

    outcomes = [await jobs[MEDIUM].call(FENCE) for _ in range(5)]

    assert database.calls == ["full", "catch-up", "catch-up", "full", "full"]
    assert [o.backlog for o in outcomes] == [True, True, False, False, True]


async def test_a_failed_catch_up_is_followed_by_a_full_run() -> None:
    database = Database([True])
    jobs = {job.name: job for job in build_jobs(load_settings({}, env_file=None), database)}
    await jobs[MEDIUM].call(FENCE)

    async def failing(fence: LeaseFence | None) -> JobOutcome:
        database.calls.append("catch-up")
        raise ConnectionError("database went away")

    database.run_medium_catch_up = failing  # type: ignore[method-assign]
    database.backlogs = [False]
    try:
        await jobs[MEDIUM].call(FENCE)
    except ConnectionError:
        pass
    await jobs[MEDIUM].call(FENCE)

    assert database.calls == ["full", "catch-up", "full"]
