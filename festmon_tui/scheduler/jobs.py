"""The four scheduled jobs of SPEC §7 and their intervals from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from festmon_tui.db.detection import JobOutcome
from festmon_tui.db.lease import LeaseFence
from festmon_tui.settings import Settings

CRITICAL = "critical"
MEDIUM = "medium"
HEALTH = "health"
CLEANUP = "cleanup"


class JobFailed(Exception):
    """A job ran but reported a failure (e.g. one detector raised): a breaker failure."""


class JobDatabase(Protocol):
    """The database calls behind the jobs (db.detection.DetectionRepository, or a fake)."""

    async def run_critical(self, fence: LeaseFence | None) -> JobOutcome: ...

    async def run_medium(self, fence: LeaseFence | None) -> JobOutcome: ...

    async def run_medium_catch_up(self, fence: LeaseFence | None) -> JobOutcome: ...

    async def run_health(self, fence: LeaseFence | None) -> JobOutcome: ...

    async def run_cleanup(self, fence: LeaseFence | None, retention_days: int) -> JobOutcome: ...


JobCall = Callable[[LeaseFence | None], Awaitable[JobOutcome]]


@dataclass(frozen=True)
class JobSpec:
    """One job: its name, how often it runs, when it first runs after gaining the lease."""

    name: str
    interval_ms: int
    first_delay_ms: int
    call: JobCall
    # set by another job when this one's work cannot wait for its timetable: the runner then
    # starts it at once (unless its last run failed: a failing job keeps its timetable)
    wake: asyncio.Event | None = None


# The original staggered first runs (0 / 15 / 30 / 60 s) so a new leader does not run
# everything at once; each delay is capped by the job's own interval.
_FIRST_DELAY_MS = {CRITICAL: 0, MEDIUM: 15_000, HEALTH: 30_000, CLEANUP: 60_000}


def build_jobs(settings: Settings, database: JobDatabase) -> tuple[JobSpec, ...]:
    """The jobs with the intervals in force."""
    retention = settings.monitoring_cleanup_retention_days

    async def cleanup(fence: LeaseFence | None) -> JobOutcome:
        return await database.run_cleanup(fence, retention)

    # After a medium run that left a backlog the runner calls again at once: that call runs
    # only the parts with a backlog, not the sweep, the escalation and the view refresh again.
    medium_backlog = False

    async def medium(fence: LeaseFence | None) -> JobOutcome:
        nonlocal medium_backlog
        catch_up, medium_backlog = medium_backlog, False
        if catch_up:
            outcome = await database.run_medium_catch_up(fence)
        else:
            outcome = await database.run_medium(fence)
        medium_backlog = outcome.backlog
        return outcome

    # The critical job leaves a far-behind card ledger build to the medium job: that job then
    # starts at once rather than at its next interval (issue 19.3). A rebuild while festmon
    # runs (the unlogged ledger emptied by a crash, a transaction type setting changed) waited
    # up to the medium interval (120 s) with no balance compared meanwhile. (A first run's
    # build starts with the medium job's first run at 15 s: at 10 M log rows the critical
    # job's first run, which says so, takes longer than that.)
    medium_wake = asyncio.Event()

    async def critical(fence: LeaseFence | None) -> JobOutcome:
        outcome = await database.run_critical(fence)
        if outcome.ledger_build_waiting:
            medium_wake.set()
        return outcome

    calls: dict[str, tuple[int, JobCall]] = {
        CRITICAL: (settings.monitoring_interval_critical, critical),
        MEDIUM: (settings.monitoring_interval_medium, medium),
        HEALTH: (settings.monitoring_interval_health, database.run_health),
        CLEANUP: (settings.monitoring_interval_cleanup, cleanup),
    }
    return tuple(
        JobSpec(
            name,
            interval,
            min(_FIRST_DELAY_MS[name], interval),
            call,
            medium_wake if name == MEDIUM else None,
        )
        for name, (interval, call) in calls.items()
    )


def checked(outcome: JobOutcome) -> JobOutcome:
    """Raise JobFailed for an outcome that reports a failure, so the breaker counts it."""
    if not outcome.success:
        raise JobFailed(outcome.summary)
    return outcome
