"""The in-process scheduler: runs the jobs only while this process holds the lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import KW_ONLY, dataclass, field

from festmon_tui.db.detection import DetectionRepository
from festmon_tui.db.lease import LeaseFence, LeaseGrant, LeaseHolder, LeaseRepository
from festmon_tui.db.settings_sync import DetectionThresholds, SettingsRowRepository
from festmon_tui.scheduler.breaker import CircuitBreaker
from festmon_tui.scheduler.jobs import build_jobs
from festmon_tui.scheduler.leader import LeaderElector, LeaderTiming
from festmon_tui.scheduler.runner import JobRun, JobRunner
from festmon_tui.settings import Settings

log = logging.getLogger(__name__)

# How long a step-down may wait for cancelled jobs (their statements get a cancel request).
_STOP_JOBS_S = 0.5


@dataclass(eq=False)
class Scheduler:
    """Leader election plus the job runner; settings are synced each time the lease is gained."""

    elector: LeaderElector
    runner: JobRunner
    _: KW_ONLY
    # Awaited each time the lease is gained, before the jobs run (the settings row write).
    on_gain: Callable[[LeaseFence], Awaitable[None]] | None = None
    on_change: Callable[[], None] | None = None
    _elector_task: asyncio.Task[None] | None = field(default=None, init=False)
    _jobs_task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.elector.on_gain = self._gained
        self.elector.on_loss = self._lost

    @property
    def running(self) -> bool:
        return self._elector_task is not None and not self._elector_task.done()

    def start(self) -> None:
        if not self.running:
            self._elector_task = asyncio.create_task(self.elector.run(), name="scheduler-lease")

    def _gained(self, fence: LeaseFence, _grant: LeaseGrant) -> None:
        self._cancel_jobs()
        self._jobs_task = asyncio.create_task(self._lead(fence), name=f"jobs-term-{fence.term}")
        self._changed()

    async def _lead(self, fence: LeaseFence) -> None:
        if self.on_gain is not None:
            try:
                await self.on_gain(fence)
            except Exception as exc:  # the jobs still run with what the database has
                log.warning("could not write the settings row: %s", exc)
        await self.runner.run(fence)

    def _lost(self, _fence: LeaseFence, _reason: str) -> None:
        # Called synchronously at the local deadline: cancellation starts before it returns.
        self._cancel_jobs()
        self._changed()

    def _cancel_jobs(self) -> None:
        if self._jobs_task is not None and not self._jobs_task.done():
            self._jobs_task.cancel()

    async def _wait_jobs(self) -> None:
        await _settle(self._jobs_task)

    async def stop(self) -> None:
        """Stop the jobs, stop competing for the lease and give it back (bounded, ~1 s)."""
        self._cancel_jobs()
        elector, self._elector_task = self._elector_task, None
        if elector is not None:
            elector.cancel()
        # Both at once, and never waiting for ever: over a stalled network a cancelled lease
        # renewal cannot finish until its connection times out (tests/reliability).
        await asyncio.gather(_settle(elector), self._wait_jobs())
        await self.elector.release()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


async def _settle(task: asyncio.Task[None] | None) -> None:
    """Wait a moment for a cancelled task to finish, never longer."""
    if task is None:
        return
    with suppress(asyncio.CancelledError, TimeoutError, Exception):
        async with asyncio.timeout(_STOP_JOBS_S):
            await asyncio.shield(task)


def build_scheduler(
    settings: Settings,
    detection: DetectionRepository,
    lease: LeaseRepository,
    settings_row: SettingsRowRepository,
    holder: LeaseHolder,
    breaker: CircuitBreaker,
    *,
    on_run: Callable[[JobRun], None],
    on_change: Callable[[], None],
) -> Scheduler:
    """The scheduler of one process: its jobs, its lease candidacy, its settings row writes."""
    runner = JobRunner(build_jobs(settings, detection), breaker, on_run=on_run)
    elector = LeaderElector(lease, holder, LeaderTiming(settings.monitoring_lease_ttl_ms))
    thresholds = DetectionThresholds.from_settings(settings)

    async def write_settings(_fence: LeaseFence) -> None:
        await settings_row.write(thresholds, holder.label)

    return Scheduler(elector, runner, on_gain=write_settings, on_change=on_change)
