"""Builds MonitorState from the database and from this process's own scheduler."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from festmon_tui.db.cycle_runs import CycleRun, CycleRunRepository
from festmon_tui.db.errors import DatabaseRefused
from festmon_tui.db.health import HealthRepository
from festmon_tui.db.lease import LeaseHolder, LeaseRepository
from festmon_tui.db.progress import CatchUpRepository
from festmon_tui.models import (
    BreakerState,
    BreakerStatus,
    ConnectionState,
    DetectionAlarm,
    DetectionAlarmKind,
    HealthStatus,
    JobStatus,
    LeaderInfo,
    MonitorState,
)
from festmon_tui.scheduler.jobs import CLEANUP, CRITICAL, HEALTH, MEDIUM
from festmon_tui.scheduler.runner import JobRun
from festmon_tui.scheduler.scheduler import Scheduler
from festmon_tui.service.documents import breaker_json, detection_alarms, evaluate_health
from festmon_tui.settings import Settings

log = logging.getLogger(__name__)

JOB_NAMES = [CRITICAL, MEDIUM, HEALTH, CLEANUP]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StateReader:
    """Reads what every process can see (health, leader, the leader's job runs) into state."""

    def __init__(
        self,
        settings: Settings,
        health: HealthRepository,
        lease: LeaseRepository,
        runs: CycleRunRepository,
        holder: LeaseHolder,
        scheduler: Scheduler | None,
        *,
        run_reads: CycleRunRepository | None = None,
        catch_up: CatchUpRepository | None = None,
    ) -> None:
        self.settings = settings
        self.health = health
        self.lease = lease
        self.runs = runs
        # The leader's job runs are read from `run_reads` (a hot standby) when given; this
        # process's own runs are written through `runs` (the primary).
        self.run_reads = run_reads or runs
        self.holder = holder
        self.catch_up = catch_up  # a first run's progress (issue 19.3); None: not shown
        self.scheduler = scheduler
        self.runner = None if scheduler is None else scheduler.runner
        self._intervals = {
            CRITICAL: settings.monitoring_interval_critical,
            MEDIUM: settings.monitoring_interval_medium,
            HEALTH: settings.monitoring_interval_health,
            CLEANUP: settings.monitoring_interval_cleanup,
        }
        self._writes: set[asyncio.Task[None]] = set()

    def _own_leader(self) -> LeaderInfo | None:
        if self.scheduler is None:
            return None
        grant = self.scheduler.elector.grant
        if grant is None:
            return None
        return LeaderInfo(
            holder_id=self.holder.holder_id,
            host=self.holder.host,
            pid=self.holder.pid,
            since=grant.acquired_at,
            expires_at=grant.expires_at,
            is_self=True,
            term=grant.term,
        )

    def local(self, state: MonitorState) -> MonitorState:
        """Refresh the parts this process knows without asking the database."""
        own = self._own_leader()
        if own is not None and self.runner is not None:
            return replace(state, leader=own, jobs=self.runner.statuses())
        if state.leader is not None and state.leader.is_self:
            return replace(state, leader=None)  # we just stepped down; the next read says who
        return state

    async def read(self, state: MonitorState, own_breaker: BreakerStatus) -> MonitorState:
        try:
            reading = await self.health.latest()
            counts = await self.health.active_counts()
            catch_up = await self.catch_up.read() if self.catch_up is not None else ()
            leader = self._own_leader() or await self.lease.current(self.holder)
        except DatabaseRefused:
            # Reachable but refused: if festmon's schema is missing or old, nothing is being
            # detected, and that is the state to show (not a calm "connected").
            problem = await self.health.schema_problem()
            if problem is None:
                raise
            return self._schema_missing(state, problem)
        breaker = own_breaker
        if leader.is_self and self.runner is not None:
            jobs = self.runner.statuses()
        else:
            latest = await self.run_reads.latest_per_kind(JOB_NAMES)
            jobs = tuple(self._job_from_run(name, latest.get(name), leader) for name in JOB_NAMES)
            published = _published_breaker(latest.get(CRITICAL))
            if leader.holder_id is not None and published is not None:
                breaker = published
        snapshot = reading.snapshot if reading else None
        alarms = detection_alarms(
            counts.failing_rules,
            counts.last_detection_at,
            counts.installed_at,
            counts.server_time,
            self.settings.monitoring_interval_critical,
            leader,
            self.settings.timezone,
        )
        status, reasons = evaluate_health(
            snapshot,
            counts.critical,
            counts.high,
            counts.last_detection_at,
            counts.server_time,
            self.settings.monitoring_interval_critical,
            alarms,
        )
        return replace(
            state,
            connection=ConnectionState.CONNECTED,
            last_error=None,
            health=snapshot,
            health_reasons=reasons,
            health_status=status,
            active_events=counts.active,
            active_critical_events=counts.critical,
            active_high_events=counts.high,
            last_detection_at=counts.last_detection_at,
            leader=leader,
            jobs=jobs,
            breaker=breaker,
            refreshed_at=_utc_now(),
            detection_alarms=alarms,
            catch_up=catch_up,
        )

    def _schema_missing(self, state: MonitorState, problem: str) -> MonitorState:
        """Connected, nothing measured, nothing detected: UNKNOWN with the cause and fix."""
        alarm = DetectionAlarm(DetectionAlarmKind.SCHEMA_MISSING, problem)
        return replace(
            state,
            connection=ConnectionState.CONNECTED,
            last_error=problem,  # commands that need the schema stop with it (exit 1)
            health=None,
            health_reasons=(problem,),
            health_status=HealthStatus.UNKNOWN,
            active_events=None,
            active_critical_events=None,
            active_high_events=None,
            last_detection_at=None,
            leader=self._own_leader(),
            refreshed_at=_utc_now(),
            detection_alarms=(alarm,),
        )

    def _job_from_run(self, name: str, run: CycleRun | None, leader: LeaderInfo) -> JobStatus:
        interval = self._intervals[name]
        if run is None:
            return JobStatus(name, interval)
        duration = None
        if run.finished_at is not None:
            duration = int((run.finished_at - run.started_at).total_seconds() * 1000)
        next_run = None
        if leader.holder_id is not None:
            next_run = run.started_at + timedelta(milliseconds=interval)
        return JobStatus(
            name=name,
            interval_ms=interval,
            running=False,
            last_started_at=run.started_at,
            last_duration_ms=duration,
            last_success=run.success,
            last_result=str(run.result.get("summary") or run.error or ""),
            next_run_at=next_run,
        )

    def record(self, run: JobRun, breaker: BreakerStatus) -> None:
        """Store a finished job run (with the breaker after it) so other processes can show it."""
        finished = run.started_at + timedelta(milliseconds=run.duration_ms)
        result: dict[str, Any] = {
            "summary": run.result,
            "term": run.term,
            "skipped": run.skipped,
            "breaker": breaker_json(breaker),
        }
        error = None if run.success else run.result

        async def write() -> None:
            try:
                await self.runs.record(
                    run.name, self.holder, run.started_at, finished, run.success, result, error
                )
            except Exception as exc:  # the database may be the reason the job failed
                log.debug("could not record the %s run: %s", run.name, exc)

        task = asyncio.create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)


def _published_breaker(run: CycleRun | None) -> BreakerStatus | None:
    """The leader's breaker as it stored it with its latest critical run."""
    data = run.result.get("breaker") if run is not None else None
    if not isinstance(data, dict):
        return None
    try:
        opened = data.get("opened_at")
        return BreakerStatus(
            name=str(data.get("name") or "database"),
            state=BreakerState(data["state"]),
            failure_count=int(data.get("failure_count") or 0),
            last_error=data.get("last_error"),
            opened_at=datetime.fromisoformat(opened) if opened else None,
            seconds_to_probe=data.get("seconds_to_next_probe"),
            half_open_calls=int(data.get("half_open_calls") or 0),
        )
    except (KeyError, ValueError, TypeError):
        return None
