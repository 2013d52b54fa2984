"""The interface the dashboard and CLI consume: one service object, no SQL in callers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from festmon_tui.models import (
    CardView,
    Change,
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
