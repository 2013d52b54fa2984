"""The interface the dashboard and CLI consume: one service object, no SQL in callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from festmon_tui.models import (
    CardView,
    Change,
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


class ActionRefused(Exception):
    """The database refused a lifecycle action (illegal transition, missing note, no privilege)."""


class Unavailable(Exception):
    """The database cannot answer right now and nothing earlier is cached; see state.last_error."""


class MonitorService(Protocol):
    """Everything a dashboard needs; expected failures are states, not exceptions."""

    @property
    def state(self) -> MonitorState:
        """The latest known state (never blocks; carries its own age)."""
        ...

    async def list_events(self, event_filter: EventFilter) -> list[Event]: ...

    async def event_detail(self, event_id: int) -> EventDetail: ...

    async def card(self, card_id: str) -> CardView:
        """One card's events, ledger and scans (Unavailable when away and never loaded)."""
        ...

    async def act(self, event_id: int, verb: Verb, note: str | None = None) -> Event:
        """One audited lifecycle action; ActionRefused says why not (viewer, transition, note)."""
        ...

    async def run_cycle_now(self) -> CycleResult: ...

    async def handover(self) -> Handover:
        """Whether this process leads the scheduler and who would take over if it quit."""
        ...

    async def health_history(self, since: datetime) -> list[HealthSnapshot]: ...

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        """(hour, severity, count) rows, from the monitoring_dashboard_summary view."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """Live updates: new events, status changes, and STATE when `state` changed."""
        ...


class DeferredService:
    """The MonitorService the app gets at once; it forwards to the real one once it is open."""

    def __init__(self, database_label: str, environment: str, viewer: bool) -> None:
        self._real: MonitorService | None = None
        self._attached = asyncio.Event()
        self._waiting = MonitorState(
            connection=ConnectionState.CONNECTING,
            database_label=database_label,
            environment=environment,
            viewer=viewer,
        )

    def attach(self, real: MonitorService) -> None:
        self._real = real
        self._attached.set()

    def _service(self) -> MonitorService:
        if self._real is None:
            raise Unavailable("still connecting to the database")
        return self._real

    @property
    def state(self) -> MonitorState:
        return self._waiting if self._real is None else self._real.state

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        return [] if self._real is None else await self._real.list_events(event_filter)

    async def event_detail(self, event_id: int) -> EventDetail:
        return await self._service().event_detail(event_id)

    def _actor(self) -> MonitorService:
        if self._real is None:
            raise ActionRefused("still connecting to the database")
        return self._real

    async def card(self, card_id: str) -> CardView:
        return await self._service().card(card_id)

    async def act(self, event_id: int, verb: Verb, note: str | None = None) -> Event:
        return await self._actor().act(event_id, verb, note)

    async def run_cycle_now(self) -> CycleResult:
        return await self._actor().run_cycle_now()

    async def handover(self) -> Handover:
        return Handover(leads=False) if self._real is None else await self._real.handover()

    async def health_history(self, since: datetime) -> list[HealthSnapshot]:
        return [] if self._real is None else await self._real.health_history(since)

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        return [] if self._real is None else await self._real.event_counts_by_hour(since)

    async def changes(self) -> AsyncIterator[Change]:
        await self._attached.wait()
        async for change in self._service().changes():
            yield change


def _implements_protocol(service: DeferredService) -> MonitorService:
    return service  # mypy checks that the class honours the dashboard's protocol
