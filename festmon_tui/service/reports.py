"""What the HTTP API asks of a running service: fresh pages, figures, and actions by a caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from festmon_tui.db.api_reads import ApiReads, EventPage, RangeFigures, RuleLag
from festmon_tui.db.connect import DatabaseUnavailable, client_timeout_s
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.events import EventNotFound, EventRepository
from festmon_tui.models import (
    Actor,
    ConnectionState,
    CycleResult,
    Event,
    EventDetail,
    HealthSnapshot,
    MonitorState,
    Verb,
)
from festmon_tui.service.actor import current_actor
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings

T = TypeVar("T")


class NotFound(Exception):
    """No event has this id."""


class Reports:
    """Reads never come from a cache here: an HTTP total must be the database's total now.

    Every call is bounded by the statement timeout (plus the client margin), so an API request
    answers 503 instead of hanging when the database is away.
    """

    def __init__(self, service: PostgresMonitorService) -> None:
        self.service = service
        self.settings: Settings = service.settings
        self.timeout_s = client_timeout_s(self.settings.monitoring_statement_timeout_ms)
        self._actor = current_actor()

    @property
    def state(self) -> MonitorState:
        return self.service.state

    @property
    def reachable(self) -> bool:
        return self.service.state.connection is ConnectionState.CONNECTED

    def _reads(self) -> ApiReads:
        pool: Any = self.service.read_pool  # the hot standby when MONITORING_READ_URL is set
        if pool is None or not self.reachable:
            raise Unavailable(self.state.last_error or "not connected to the database yet")
        return ApiReads(pool)

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call()
        except (DatabaseUnavailable, StatementTimedOut, TimeoutError) as exc:
            raise Unavailable(str(exc) or "no answer from the database in time") from None
        except EventNotFound as exc:
            raise NotFound(str(exc)) from None
        except DatabaseRefused as exc:
            raise Unavailable(str(exc)) from None

    async def event_page(self, **filters: object) -> EventPage:
        reads = self._reads()
        return await self._bounded(lambda: reads.event_page(**filters))  # type: ignore[arg-type]

    async def event_detail(self, event_id: int) -> EventDetail:
        pool: Any = self.service.read_pool
        if pool is None or not self.reachable:
            raise Unavailable(self.state.last_error or "not connected to the database yet")
        return await self._bounded(lambda: EventRepository(pool).detail(event_id))

    async def active_by_kind(self) -> list[tuple[str, str, int]]:
        reads = self._reads()
        return await self._bounded(reads.active_by_kind)

    async def rule_lag(self) -> list[RuleLag]:
        reads = self._reads()
        return await self._bounded(reads.rule_lag)

    async def recent_alerts(self, limit: int) -> list[dict[str, object]]:
        reads = self._reads()
        return await self._bounded(lambda: reads.recent_alerts(limit))

    async def recent_failures(self, since: datetime) -> int:
        reads = self._reads()
        return await self._bounded(lambda: reads.recent_failures(since))

    async def range_figures(self, start: datetime, end: datetime) -> RangeFigures:
        reads = self._reads()
        return await self._bounded(lambda: reads.range_figures(start, end))

    async def trends(
        self, since: datetime
    ) -> tuple[list[HealthSnapshot], list[tuple[datetime, str, int]]]:
        """The same two reads the dashboard's trends pane makes (ui/app.py load_trends)."""
        self._reads()  # away: 503 rather than the service's cached or empty answer
        history = await self._bounded(lambda: self.service.health_history(since))
        counts = await self._bounded(lambda: self.service.event_counts_by_hour(since))
        return history, counts

    async def act(
        self, verb: Verb, event_id: int, note: str | None, caller: str, address: str | None
    ) -> Event:
        """One audited lifecycle action, through the one action path, by the caller's token name."""
        if not self.reachable:
            raise Unavailable(self.state.last_error or "not connected to the database yet")
        actor = Actor(
            os_user=self._actor.os_user,
            host=self._actor.host,
            ssh_client=address,
            tty=None,
            operator=caller,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.service.act(event_id, verb, note, actor=actor)
        except EventNotFound as exc:
            raise NotFound(str(exc)) from None
        except TimeoutError:
            raise Unavailable("no answer from the database in time") from None
        except ActionRefused as exc:
            if str(exc).startswith("the database is unavailable"):
                raise Unavailable(str(exc)) from None
            if "does not exist" in str(exc):
                raise NotFound(str(exc)) from None
            raise

    async def run_cycle(self) -> CycleResult:
        """A manual cycle, exclusive across every festmon process (ActionRefused if not now)."""
        if not self.reachable:
            raise Unavailable(self.state.last_error or "not connected to the database yet")
        return await self.service.run_cycle_now()

    def state_with_breaker(self) -> MonitorState:
        return replace(self.state, breaker=self.service.breaker.status())
