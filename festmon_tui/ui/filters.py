"""The filter presets the keys step through, and how the event list is sorted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from festmon_tui.models import Event, EventFilter, EventStatus, EventType, Severity
from festmon_tui.ui.display import clean, type_label

T = TypeVar("T")
Step = tuple[str, frozenset[T]]

ACTIVE = frozenset({EventStatus.OPEN, EventStatus.INVESTIGATING})


def _at_least(severity: Severity) -> frozenset[Severity]:
    return frozenset(s for s in Severity if s.weight >= severity.weight)


SEVERITY_STEPS: tuple[Step[Severity], ...] = (
    ("all", frozenset()),
    ("CRITICAL", frozenset({Severity.CRITICAL})),
    ("≥HIGH", _at_least(Severity.HIGH)),
    ("≥MEDIUM", _at_least(Severity.MEDIUM)),
    ("≥LOW", _at_least(Severity.LOW)),
)
STATUS_STEPS: tuple[Step[EventStatus], ...] = (
    ("active", ACTIVE),
    ("all", frozenset()),
    ("OPEN", frozenset({EventStatus.OPEN})),
    ("INVESTIGATING", frozenset({EventStatus.INVESTIGATING})),
    ("closed", frozenset({EventStatus.RESOLVED, EventStatus.FALSE_POSITIVE})),
)
TYPE_STEPS: tuple[Step[EventType], ...] = (
    ("all", frozenset()),
    *((type_label(t), frozenset({t})) for t in EventType),
)

DEFAULT_FILTER = EventFilter(statuses=ACTIVE)


def next_step(steps: Sequence[Step[T]], current: frozenset[T]) -> frozenset[T]:
    values = [value for _, value in steps]
    index = values.index(current) if current in values else -1
    return values[(index + 1) % len(values)]


def step_label(steps: Sequence[Step[T]], current: frozenset[T]) -> str:
    for label, value in steps:
        if value == current:
            return label
    return ",".join(sorted(str(v) for v in current))


def describe(event_filter: EventFilter) -> str:
    """'status active · severity ≥HIGH · type all · search "x"' for the filter bar."""
    parts = [
        f"status {step_label(STATUS_STEPS, event_filter.statuses)}",
        f"severity {step_label(SEVERITY_STEPS, event_filter.severities)}",
        f"type {step_label(TYPE_STEPS, event_filter.event_types)}",
    ]
    if event_filter.search:
        parts.append(f'search "{clean(event_filter.search, max_len=30)}"')
    return " · ".join(parts)


def with_search(event_filter: EventFilter, text: str) -> EventFilter:
    return replace(event_filter, search=text.strip() or None)


class SortColumn(StrEnum):
    """Columns the event list can be sorted by, in the order `o` steps through them."""

    SEVERITY = "severity"
    AGE = "age"
    OCCURRENCES = "occurrences"
    AMOUNT = "amount"
    CARD = "card"
    TYPE = "type"
    STATUS = "status"


_EPOCH = datetime.min.replace(tzinfo=UTC)
_STATUS_ORDER = {status: index for index, status in enumerate(EventStatus)}

# Each column's natural order (most urgent / newest / largest first for the numeric ones).
_KEYS: dict[SortColumn, tuple[Callable[[Event], Any], bool]] = {
    SortColumn.SEVERITY: (lambda e: e.severity.weight, True),
    SortColumn.AGE: (lambda e: e.detection_timestamp, True),
    SortColumn.OCCURRENCES: (lambda e: e.occurrence_count, True),
    SortColumn.AMOUNT: (lambda e: e.affected_amount or Decimal(0), True),
    SortColumn.CARD: (lambda e: e.card_id or "", False),
    SortColumn.TYPE: (lambda e: str(e.event_type), False),
    SortColumn.STATUS: (lambda e: _STATUS_ORDER.get(e.status, 99), False),
}


@dataclass(frozen=True)
class SortOrder:
    """A column and whether its natural order is inverted."""

    column: SortColumn = SortColumn.SEVERITY
    inverted: bool = False

    def next_column(self) -> SortOrder:
        columns = list(SortColumn)
        return SortOrder(columns[(columns.index(self.column) + 1) % len(columns)])

    def reversed(self) -> SortOrder:
        return SortOrder(self.column, not self.inverted)

    @property
    def label(self) -> str:
        arrow = "▲" if self.inverted else "▼"
        return f"{self.column.value} {arrow}"


def sort_events(events: Iterable[Event], order: SortOrder) -> list[Event]:
    """Sorted by the column, ties newest first (stable, so the secondary order survives)."""
    key, natural_desc = _KEYS[order.column]
    newest_first = sorted(events, key=lambda e: e.detection_timestamp or _EPOCH, reverse=True)
    return sorted(newest_first, key=key, reverse=natural_desc != order.inverted)
