"""PostgresMonitorService: the MonitorService the dashboard and the CLI use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import asyncpg

from festmon_tui.db.connect import (
    POOL_RETRY_LOG,
    ConnectOptions,
    DatabaseUnavailable,
    create_pool,
    ping,
)
from festmon_tui.db.cycle_runs import CycleRunRepository
from festmon_tui.db.detection import DetectionRepository
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.events import EventRepository
from festmon_tui.db.health import HealthRepository
from festmon_tui.db.lease import LeaseHolder, LeaseRepository, NotLeader
from festmon_tui.db.listen import EventListener
from festmon_tui.db.progress import CatchUpRepository
from festmon_tui.db.replica import ReadRoute, is_in_recovery
from festmon_tui.db.settings_sync import SettingsRowRepository
from festmon_tui.models import (
    Actor,
    CardView,
    Change,
    ChangeKind,
    ConnectionState,
    CycleResult,
    Event,
    EventDetail,
    EventFilter,
    Handover,
    HealthSnapshot,
    MonitorState,
    Verb,
)
from festmon_tui.retry import Backoff
from festmon_tui.scheduler.breaker import BreakerConfig, CircuitBreaker
from festmon_tui.scheduler.leader import LeaderTiming
from festmon_tui.scheduler.runner import JobRun
from festmon_tui.scheduler.scheduler import Scheduler, build_scheduler
from festmon_tui.service.actor import current_actor
from festmon_tui.service.api import ActionRefused, MonitorService, Unavailable
from festmon_tui.service.changes import ChangeHub, Subscription
from festmon_tui.service.cycles import ManualCycles
from festmon_tui.service.operations import Operations
from festmon_tui.service.replica import ReplicaWatch
from festmon_tui.service.state import StateReader
from festmon_tui.settings import Settings

log = logging.getLogger(__name__)

# Quitting waits this long at most to learn whether another festmon would take over.
HANDOVER_TIMEOUT_S = 1.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _log_crash(task: asyncio.Task[None]) -> None:
    """A bug in the supervisor must be loud, not a silently frozen state."""
    if not task.cancelled() and task.exception() is not None:
        log.error("monitor supervisor crashed", exc_info=task.exception())


class PostgresMonitorService:
    """Owns the pools, the breaker, the scheduler (unless viewer) and the live listener."""

    def __init__(
        self,
        settings: Settings,
        options: ConnectOptions,
        *,
        viewer: bool = False,
        run_scheduler: bool | None = None,
        listen: bool = True,
        database_label: str | None = None,
        on_job_run: Callable[[JobRun], None] | None = None,
        holder: LeaseHolder | None = None,
        read_options: ConnectOptions | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        # Reads on a hot standby (MONITORING_READ_URL): the dashboard's and the API's queries go
        # there, detection, leadership and actions to `options` (the primary).
        if read_options is None and settings.read_dsn is not None:
            read_options = ConnectOptions.from_settings(settings, settings.read_dsn)
        self.read_options = read_options
        self.viewer = viewer
        self.schedules = (not viewer) if run_scheduler is None else (run_scheduler and not viewer)
        self.listens = listen
        self.holder = holder or LeaseHolder.for_this_process()
        self.actor = current_actor(settings.monitoring_operator)
        self._on_job_run = on_job_run
        self.hub = ChangeHub()
        self.breaker = CircuitBreaker(
            "database",
            BreakerConfig(
                failure_threshold=settings.monitoring_circuit_failure_threshold,
                recovery_timeout_ms=settings.monitoring_circuit_recovery_timeout_ms,
                half_open_max_calls=settings.monitoring_circuit_half_open_max_calls,
                timeout_ms=settings.monitoring_circuit_timeout_ms,
            ),
            on_change=lambda _status: self._touch(),
            neutral=(NotLeader,),
        )
        self._state = MonitorState(
            connection=ConnectionState.CONNECTING,
            database_label=database_label or options.redacted,
            environment=str(settings.environment),
            viewer=viewer,
            breaker=self.breaker.status(),
            started_at=_utc_now(),
            scheduler_enabled=self.schedules,
            live_updates=self._live_updates(),
        )
        self.pool: asyncpg.Pool | None = None
        self._lease_pool: asyncpg.Pool | None = None
        self._read_pool: asyncpg.Pool | None = None
        self._route: ReadRoute | None = None
        self._replica: ReplicaWatch | None = None
        self.scheduler: Scheduler | None = None
        self._reader: StateReader | None = None
        self._ops: Operations | None = None
        self._listener: EventListener | None = None
        self._lease: LeaseRepository | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()
        self._refresh_now = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> PostgresMonitorService:
        await self.start()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start connecting in the background; never raises when the database is away."""
        if not self._tasks:
            task = asyncio.create_task(self._supervise(), name="monitor-supervisor")
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def wait_ready(self, timeout_s: float) -> MonitorState:
        """Wait for the first attempt to reach the database (success or not); return the state."""
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        if not self._ready.is_set():
            self._set_unavailable(
                self._state.last_error or f"no answer from the database within {timeout_s:g} s"
            )
        return self._state

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the first successful refresh; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop jobs, release the lease, close the listener and the pools (bounded, ~1.5 s)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if self.scheduler is not None:
            await self.scheduler.stop()
        self.hub.close()
        pools = [p for p in (self.pool, self._lease_pool, self._read_pool) if p is not None]
        await asyncio.gather(*(_close(pool) for pool in pools))
        self.pool = self._lease_pool = self._read_pool = None
        # The pools are closed or terminated, so a task stuck on one of their connections (a
        # refresh over a stalled network) ends now; the timeout is only a safety net.
        if tasks:
            await asyncio.wait(tasks, timeout=0.5)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # a failure while stopping is expected, not news

    async def _supervise(self) -> None:
        backoff = Backoff()
        while self.pool is None:
            try:
                await self._open_pools()
            except DatabaseUnavailable as exc:
                self._set_unavailable(str(exc))
                self._ready.set()
                await asyncio.sleep(backoff.next_delay())
        self._start_components()
        await self._refresh_forever()

    @property
    def _can_listen(self) -> bool:
        """A hot standby cannot LISTEN, nor can a transaction-mode pooler: those poll."""
        return self.read_options is None and self.options.supports_listen

    @property
    def read_pool(self) -> asyncpg.Pool | ReadRoute | None:
        """Where reads go: the standby (falling back to the primary), or the one pool."""
        return self._route if self._route is not None else self.pool

    async def _open_pools(self) -> None:
        if self.read_options is not None:
            await self._open_replicated_pools()
            return
        pool = await create_pool(self.options, min_size=1, max_size=6)
        try:
            # Lease renewals get their own connection so busy jobs can never starve them.
            lease_pool = await create_pool(self.options, min_size=1, max_size=1)
        except DatabaseUnavailable:
            pool.terminate()
            raise
        self.pool, self._lease_pool = pool, lease_pool
        # In auto mode the first connection may have found a pooler: polling, not LISTEN.
        self._replace(replace(self._state, live_updates=self._live_updates()))
        with suppress(DatabaseUnavailable, DatabaseRefused, StatementTimedOut):
            if await is_in_recovery(pool):
                self._standby_only(pool)

    async def _open_replicated_pools(self) -> None:
        """Pools that connect on first use (min_size 0: no connection is opened here), since
        either server may be away now and back later; their failures are the queries'."""
        assert self.read_options is not None
        self.pool = await create_pool(self.options, min_size=0, max_size=6)
        self._lease_pool = await create_pool(self.options, min_size=0, max_size=1)
        self._read_pool = await create_pool(self.read_options, min_size=0, max_size=4)
        self._route = ReadRoute(self._read_pool, self.pool, on_away=self._reads_moved)
        self._replica = ReplicaWatch(self._route, self.pool)

    def _standby_only(self, pool: asyncpg.Pool) -> None:
        """DATABASE_URL names a hot standby: read it, poll it, never write to it."""
        self._route = ReadRoute(pool, None)
        self._replica = ReplicaWatch(self._route, None)
        self.schedules = False
        self._replace(
            replace(
                self._state,
                scheduler_enabled=False,
                live_updates="poll" if self.listens else None,
                replica=self._replica.status,
            )
        )

    def _reads_moved(self, _error: str) -> None:
        """A query found a server away (a read fell back to the primary, or an action found the
        primary gone): re-check both soon; the refresh says which is away."""
        self._refresh_now.set()

    def _live_updates(self) -> str | None:
        if not self.listens:
            return None
        return "listen" if self._can_listen else "poll"

    def _start_components(self) -> None:
        assert self.pool is not None and self._lease_pool is not None
        timeout_ms = self.settings.monitoring_circuit_timeout_ms
        detection = DetectionRepository(self.pool, timeout_ms=timeout_ms)
        runs = CycleRunRepository(self.pool)
        lease = self._lease = LeaseRepository(self._lease_pool)
        # Reads (events, health, trends, state) on the standby when there is one; writes (actions,
        # cycles, the lease, job runs) on the primary.
        reads: Any = self._route if self._route is not None else self.pool
        health = HealthRepository(reads)
        self._ops = Operations(
            EventRepository(self.pool),
            health,
            ManualCycles(detection, runs, self.breaker, self.holder, self.actor),
            self.actor,
            viewer=self.viewer,
            on_away=self._set_unavailable if self._route is None else self._reads_moved,
            on_change=self._changed,
            reads=None if self._route is None else EventRepository(reads),
        )
        if self.schedules:
            self.scheduler = build_scheduler(
                self.settings,
                detection,
                lease,
                SettingsRowRepository(self.pool),
                self.holder,
                self.breaker,
                on_run=self._job_ran,
                on_change=self._touch,
            )
            self.scheduler.start()
        self._reader = StateReader(
            self.settings,
            health,
            lease if self._route is None else LeaseRepository(reads),
            runs,
            self.holder,
            self.scheduler,
            run_reads=None if self._route is None else CycleRunRepository(reads),
            catch_up=CatchUpRepository(reads),
        )
        if self.listens:
            # On a standby LISTEN is impossible: options that say "pooled" make the listener poll
            # (its options serve only to open a LISTEN connection; the polls use `reads`).
            self._listener = EventListener(
                self.options if self._route is None else replace(self.options, pooled=True),
                reads,
                self.hub.publish,
                poll_interval_ms=self.settings.monitoring_poll_interval_ms,
            )
            task = asyncio.create_task(self._listener.run(), name="monitor-listener")
            self._tasks.append(task)

    async def _refresh_forever(self) -> None:
        backoff = Backoff()
        while True:
            wait = self.settings.monitoring_poll_interval_ms / 1000
            try:
                await self.refresh()
                backoff.reset()
            except (DatabaseUnavailable, StatementTimedOut) as exc:
                self._set_unavailable(str(exc))
                wait = backoff.next_delay()
            except DatabaseRefused as exc:  # reachable, but e.g. the schema is not migrated
                self._replace(
                    replace(self._state, connection=ConnectionState.CONNECTED, last_error=str(exc))
                )
                wait = backoff.next_delay()
            except Exception as exc:  # unclassified (a bug, a new asyncpg error): loud, not frozen
                log.exception("monitor refresh failed")
                self._set_unavailable(f"monitor refresh failed: {exc}")
                wait = backoff.next_delay()
            self._ready.set()
            self._refresh_now.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._refresh_now.wait()

    async def refresh(self) -> MonitorState:
        """Re-read health, leader and jobs now; publishes a STATE change if anything moved."""
        if self._reader is None:
            return self._state
        if self.pool is not None and self.read_options is None:
            # First: does the database answer at all? (Through a pooler an outage is a wait.)
            # With a standby for reads, the probe below asks both servers instead: the primary
            # being away must not make the standby's data unavailable.
            await ping(self.pool, self.options.connect_timeout_s)
        was_unavailable = self._state.connection is not ConnectionState.CONNECTED
        if self._replica is not None:
            replica = await self._replica.probe()
            self._replace(replace(self._state, replica=replica))
        state = await self._reader.read(self._state, self.breaker.status())
        self._replace(state)
        self._connected.set()
        if was_unavailable:
            POOL_RETRY_LOG.recovered()
            if self.scheduler is not None:
                self.scheduler.elector.nudge()
        return self._state

    # -- state and changes -------------------------------------------------------------------

    @property
    def state(self) -> MonitorState:
        return self._state

    def changes(self) -> Subscription:
        return self.hub.subscribe()

    def _replace(self, state: MonitorState) -> None:
        before = replace(self._state, refreshed_at=None)
        self._state = state
        if replace(state, refreshed_at=None) != before:
            self.hub.publish(Change(ChangeKind.MONITOR))

    def _set_unavailable(self, error: str) -> None:
        self._replace(
            replace(self._state, connection=ConnectionState.UNAVAILABLE, last_error=error)
        )

    def _touch(self) -> None:
        """Something local changed (breaker, leadership, a job ran): publish and re-read soon."""
        state = replace(self._state, breaker=self.breaker.status())
        if self._reader is not None:
            state = self._reader.local(state)
        self._replace(state)
        self._refresh_now.set()

    def _job_ran(self, run: JobRun) -> None:
        if self._on_job_run is not None:
            self._on_job_run(run)
        if self._reader is not None:
            self._reader.record(run, self.breaker.status())
        self._touch()

    # -- queries and actions (MonitorService) -----------------------------------------------

    def _operations(self) -> Operations:
        if self._ops is None:
            raise Unavailable(self._state.last_error or "not connected to the database yet")
        return self._ops

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        if self._ops is None:
            return []
        return await self._ops.list_events(event_filter)

    async def event_detail(self, event_id: int) -> EventDetail:
        return await self._operations().event_detail(event_id)

    async def health_history(self, since: datetime) -> list[HealthSnapshot]:
        return [] if self._ops is None else await self._ops.health_history(since)

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        return [] if self._ops is None else await self._ops.event_counts_by_hour(since)

    async def card(self, card_id: str) -> CardView:
        return await self._operations().card(card_id)

    async def act(
        self, event_id: int, verb: Verb, note: str | None = None, *, actor: Actor | None = None
    ) -> Event:
        if self._ops is None:
            raise ActionRefused(self._state.last_error or "not connected to the database yet")
        self._refuse_without_primary()
        event = await self._ops.act(event_id, verb, note, actor)
        if self._replica is not None:
            # Done on the primary; the standby's rows show it once replayed.
            self._replace(replace(self._state, replica=await self._replica.acted(event_id)))
        return event

    def _refuse_without_primary(self) -> None:
        if self.viewer or self._replica is None:
            return  # a viewer's refusal says "viewer"; without a standby the database answers
        if self._replica.primary_error is not None:
            raise ActionRefused(self._replica.primary_error)

    async def run_cycle_now(self) -> CycleResult:
        """One full detection cycle, at most one at a time across every festmon process."""
        if self._ops is None:
            raise ActionRefused(self._state.last_error or "not connected to the database yet")
        self._refuse_without_primary()
        result = await self._ops.run_cycle()
        self._replace(replace(self._state, last_cycle=result, breaker=self.breaker.status()))
        return result

    async def handover(self) -> Handover:
        """Asked when the operator quits: leading, and how many standbys the database knows."""
        if self.scheduler is None or not self.scheduler.elector.is_leader or self._lease is None:
            return Handover(leads=False)
        takeover_s = LeaderTiming(self.settings.monitoring_lease_ttl_ms).renew_period_s
        try:
            async with asyncio.timeout(HANDOVER_TIMEOUT_S):
                standbys = await self._lease.standbys(self.holder)
        except (TimeoutError, DatabaseUnavailable, DatabaseRefused, StatementTimedOut):
            standbys = None
        return Handover(leads=True, standbys=standbys, takeover_s=takeover_s)

    def _changed(self) -> None:
        """An action or a manual cycle wrote: re-read the state, and poll for changes now."""
        self._refresh_now.set()
        if self._listener is not None:
            self._listener.nudge()


async def _close(pool: asyncpg.Pool) -> None:
    """Close gracefully if that is quick, else drop every connection."""
    try:
        async with asyncio.timeout(0.5):
            await pool.close()
    except (TimeoutError, Exception):
        pool.terminate()


def _implements_protocol(service: PostgresMonitorService) -> MonitorService:
    return service  # mypy checks that the class honours the dashboard's protocol
