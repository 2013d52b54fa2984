"""What callers ask of a connected service: queries, lifecycle actions and manual cycles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.events import EventRepository
from festmon_tui.db.health import HealthRepository
from festmon_tui.models import (
    Actor,
    Change,
    ChangeKind,
    CycleResult,
    Event,
    EventDetail,
    EventFilter,
    HealthSnapshot,
)
from festmon_tui.scheduler.api import ActionRefused, Unavailable
from festmon_tui.scheduler.breaker import BreakerOpen
from festmon_tui.scheduler.cycles import ManualCycles

T = TypeVar("T")
AWAY = (DatabaseUnavailable, StatementTimedOut)


class Operations:
    """Reads fall back to the last answer when the database is away; actions raise ActionRefused."""

    def __init__(
        self,
        events: EventRepository,
        health: HealthRepository,
        cycles: ManualCycles,
        actor: Actor,
        *,
        viewer: bool,
        on_away: Callable[[str], None],
        on_change: Callable[[Change | None], None],
    ) -> None:
        self.events = events
        self.health = health
        self.cycles = cycles
        self.actor = actor
        self.viewer = viewer
        self._on_away = on_away
        self._on_change = on_change
        self._cache: dict[Any, Any] = {}

    async def _read(self, key: Any, call: Callable[[], Awaitable[T]], empty: T) -> T:
        try:
            result = await call()
        except AWAY as exc:
            self._on_away(str(exc))
            cached: T = self._cache.get(key, empty)
            return cached
        self._cache[key] = result
        return result

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        return await self._read(
            ("events", event_filter), lambda: self.events.list(event_filter), []
        )

    async def health_history(self, since: datetime) -> list[HealthSnapshot]:
        return await self._read(("history",), lambda: self.health.history(since), [])

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        return await self._read(("counts",), lambda: self.health.counts_by_hour(since), [])

    async def event_detail(self, event_id: int) -> EventDetail:
        key = ("detail", event_id)
        try:
            detail = await self.events.detail(event_id)
        except AWAY as exc:
            self._on_away(str(exc))
            if key not in self._cache:
                raise Unavailable(str(exc)) from None
            cached: EventDetail = self._cache[key]
            return cached
        except DatabaseRefused as exc:
            raise ActionRefused(str(exc)) from None
        self._cache[key] = detail
        return detail

    async def act(self, action: str, event_id: int, note: str | None) -> Event:
        """One audited lifecycle action; the database's refusal becomes ActionRefused."""
        if self.viewer:
            raise ActionRefused("viewer mode is read-only: lifecycle actions are disabled")
        note = (note or "").strip() or None
        try:
            event = await self.events.apply(action, event_id, self.actor, note)
        except AWAY as exc:
            self._on_away(str(exc))
            raise ActionRefused(f"the database is unavailable: {exc}") from None
        except DatabaseRefused as exc:
            raise ActionRefused(str(exc)) from None
        self._on_change(
            Change(
                ChangeKind.EVENT_UPDATED,
                event.event_id,
                str(event.event_type),
                str(event.severity),
                str(event.status),
            )
        )
        return event

    async def run_cycle(self) -> CycleResult:
        if self.viewer:
            raise ActionRefused("viewer mode is read-only: it cannot run a detection cycle")
        try:
            result = await self.cycles.run()
        except AWAY as exc:
            self._on_away(str(exc))
            raise ActionRefused(f"the detection cycle failed: {exc}") from None
        except (DatabaseRefused, BreakerOpen) as exc:
            raise ActionRefused(str(exc)) from None
        self._on_change(None)
        return result
