"""Last answers for when the database is away: kept, but only for the last few filters/details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.models import (
    Actor,
    Event,
    EventDetail,
    EventFilter,
    EventStatus,
    EventType,
    Severity,
)
from festmon_tui.service.api import Unavailable
from festmon_tui.service.operations import KEPT_DETAILS, KEPT_EVENT_LISTS, Operations

SEARCHES = 40  # an operator trying searches: each is another filter, another list of events


def _event(event_id: int) -> Event:
    return Event(
        event_id=event_id,
        event_type=EventType.TRANSACTION_FAILURE,
        severity=Severity.HIGH,
        detection_algorithm="consecutive_failures",
        status=EventStatus.OPEN,
        detection_timestamp=datetime(2026, 7, 4, 22, 0, tzinfo=UTC),
    )


class Events:
    """Stands in for EventRepository: answers from memory, or fails like a database away."""

    def __init__(self) -> None:
        self.away = False

    def _check(self) -> None:
        if self.away:
            raise DatabaseUnavailable("connection refused")

    async def list(self, event_filter: EventFilter) -> list[Event]:
        self._check()
        return [_event(len(event_filter.search or ""))]

    async def detail(self, event_id: int) -> EventDetail:
        self._check()
        return EventDetail(_event(event_id))


def _operations(events: Events) -> Operations:
    none: Any = None
    return Operations(
        events,  # type: ignore[arg-type]
        none,
        none,
        Actor("op", "host"),
        viewer=True,
        on_away=lambda _reason: None,
        on_change=lambda _change: None,
    )


async def test_only_the_event_lists_of_the_last_filters_are_kept_for_when_the_database_is_away():
    events = Events()
    ops = _operations(events)
    filters = [EventFilter(search="x" * n) for n in range(1, SEARCHES + 1)]
    for event_filter in filters:
        assert (await ops.list_events(event_filter))[0].event_id == len(event_filter.search or "")

    events.away = True
    recent = filters[-KEPT_EVENT_LISTS:]
    for event_filter in recent:  # the last answers, while the database is away
        assert [e.event_id for e in await ops.list_events(event_filter)] == [
            len(event_filter.search or "")
        ]
    assert await ops.list_events(filters[0]) == []  # long forgotten: nothing held for it
    assert len(ops._lists) == KEPT_EVENT_LISTS


async def test_only_the_last_opened_event_details_are_kept():
    events = Events()
    ops = _operations(events)
    for event_id in range(1, 101):
        await ops.event_detail(event_id)
    events.away = True
    assert (await ops.event_detail(100)).event.event_id == 100
    assert (await ops.event_detail(101 - KEPT_DETAILS)).event.event_id == 101 - KEPT_DETAILS
    with pytest.raises(Unavailable):
        await ops.event_detail(1)
    assert len(ops._details) == KEPT_DETAILS
