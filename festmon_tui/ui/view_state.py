"""What the dashboard shows now (loaded data with its age) and the messages asking for more."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from textual.message import Message

from festmon_tui.models import CycleResult, Event, EventFilter, HealthSnapshot, Verb


class TrendRange(StrEnum):
    """The time span of the trend charts."""

    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def span(self) -> timedelta:
        return {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}[
            self.value
        ]

    def next(self) -> TrendRange:
        ranges = list(TrendRange)
        return ranges[(ranges.index(self) + 1) % len(ranges)]


@dataclass(frozen=True)
class EventWindow:
    """The events loaded for the current filter (at most `limit`), and when."""

    events: tuple[Event, ...] = ()
    event_filter: EventFilter = field(default_factory=EventFilter)
    loaded_at: datetime | None = None
    more: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Trends:
    """Stored snapshots and hourly event counts for the chosen range."""

    range: TrendRange
    snapshots: tuple[HealthSnapshot, ...] = ()
    counts: tuple[tuple[datetime, str, int], ...] = ()
    loaded_at: datetime | None = None
    error: str | None = None


class CyclePhase(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CycleProgress:
    """The manual cycle: not run, running since, or its result."""

    phase: CyclePhase = CyclePhase.IDLE
    started_at: datetime | None = None
    result: CycleResult | None = None
    error: str | None = None


@dataclass(eq=False)
class FiltersChanged(Message):
    """The operator changed the filters or the search."""

    event_filter: EventFilter


@dataclass(eq=False)
class EventChosen(Message):
    """The operator opened an event."""

    event_id: int


@dataclass(eq=False)
class LifecycleRequested(Message):
    """The operator asked for a lifecycle action on one event (the note already given)."""

    event_id: int
    verb: Verb
    note: str | None = None


@dataclass(eq=False)
class CardChosen(Message):
    """The operator asked for one card's view."""

    card_id: str


@dataclass(eq=False)
class CardActionRequested(Message):
    """One action, with one note, on each of these events of a card."""

    card_id: str
    event_ids: tuple[int, ...]
    verb: Verb
    note: str | None = None


@dataclass(eq=False)
class ExportRequested(Message):
    """The operator asked to export the filtered events ('csv' or 'json')."""

    fmt: str


@dataclass(eq=False)
class TrendRangeChanged(Message):
    trend_range: TrendRange
