"""Run each job at its interval under the breaker, never overlapping itself, recording every run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime, timedelta

from festmon_tui.db.detection import JobOutcome
from festmon_tui.db.lease import LeaseFence
from festmon_tui.models import JobStatus
from festmon_tui.scheduler.breaker import BreakerOpen, CircuitBreaker, utc_now
from festmon_tui.scheduler.jobs import JobSpec, checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    """One finished (or refused) run of a job, as logged by `festmon run --headless`."""

    name: str
    term: int | None
    started_at: datetime
    duration_ms: int
    success: bool
    result: str
    skipped: bool = False


@dataclass(eq=False)
class JobRunner:
    """Runs the jobs while this process holds the lease; cancelled when it loses it."""

    specs: tuple[JobSpec, ...]
    breaker: CircuitBreaker
    _: KW_ONLY
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # with `clock`: fake time in tests
    on_run: Callable[[JobRun], None] | None = None
    _status: dict[str, JobStatus] = field(init=False)

    def __post_init__(self) -> None:
        self._status = {spec.name: JobStatus(spec.name, spec.interval_ms) for spec in self.specs}

    def statuses(self) -> tuple[JobStatus, ...]:
        return tuple(self._status[spec.name] for spec in self.specs)

    async def run(self, fence: LeaseFence | None) -> None:
        """Run every job's loop until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for spec in self.specs:
                    group.create_task(self._loop(spec, fence), name=f"job-{spec.name}")
        finally:
            for name, status in self._status.items():
                self._status[name] = replace(status, running=False, next_run_at=None)

    async def _loop(self, spec: JobSpec, fence: LeaseFence | None) -> None:
        due = self.clock() + spec.first_delay_ms / 1000
        while True:
            wait_s = max(0.0, due - self.clock())
            self._set(spec.name, next_run_at=self.wall_clock() + timedelta(seconds=wait_s))
            if wait_s:
                await self._sleep_unless_woken(spec, wait_s)
            if spec.wake is not None:
                spec.wake.clear()  # this run does what the wake asked for
            started = self.clock()
            retry_in = await self.run_once(spec, fence)
            interval_s = spec.interval_ms / 1000
            due = started + interval_s
            if retry_in is not None:
                due = min(due, self.clock() + max(0.05, retry_in))
            # An overrunning job runs again at once, but never twice at the same time.
            due = max(due, self.clock())

    async def _sleep_unless_woken(self, spec: JobSpec, wait_s: float) -> None:
        """Sleep until the job is due, or until another job wakes it (JobSpec.wake); a job
        whose last run failed keeps its timetable."""
        if spec.wake is None or self._status[spec.name].last_success is False:
            await self.sleep(wait_s)
            return
        sleeper = asyncio.ensure_future(self.sleep(wait_s))
        waker = asyncio.ensure_future(spec.wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def run_once(self, spec: JobSpec, fence: LeaseFence | None) -> float | None:
        """Run one job now; return how soon to run it again if sooner than its interval."""
        started_at = self.wall_clock()
        started = self.clock()
        self._set(spec.name, running=True, last_started_at=started_at, next_run_at=None)
        skipped = False
        retry_in: float | None = None
        try:
            outcome: JobOutcome = await self.breaker.call(lambda: _checked_call(spec, fence))
            success, result = True, outcome.summary
            if outcome.backlog:
                retry_in = 0.0  # more rows are waiting than one batch: catch up at once
        except BreakerOpen as exc:
            success, result, skipped = False, f"skipped: {exc}", True
            retry_in = self.breaker.status().seconds_to_probe
        except asyncio.CancelledError:
            self._set(spec.name, running=False)
            raise
        except Exception as exc:  # a failure is data for the dashboard, not a crash
            success, result = False, _one_line(exc)
        duration_ms = int((self.clock() - started) * 1000)
        self._set(
            spec.name,
            running=False,
            last_duration_ms=duration_ms,
            last_success=success,
            last_result=result,
        )
        run = JobRun(
            spec.name,
            fence.term if fence else None,
            started_at,
            duration_ms,
            success,
            result,
            skipped,
        )
        if self.on_run is not None:
            self.on_run(run)
        return retry_in

    def _set(self, name: str, **changes: object) -> None:
        self._status[name] = replace(self._status[name], **changes)  # type: ignore[arg-type]


async def _checked_call(spec: JobSpec, fence: LeaseFence | None) -> JobOutcome:
    return checked(await spec.call(fence))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
