"""What callers ask of a connected service: queries, lifecycle actions and manual cycles."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.events import EventNotFound, EventRepository
from festmon_tui.db.health import HealthRepository
from festmon_tui.models import (
    Actor,
    CardView,
    CycleResult,
    Event,
    EventDetail,
    EventFilter,
    HealthSnapshot,
    Verb,
)
from festmon_tui.scheduler.breaker import BreakerOpen
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.cycles import ManualCycles

T = TypeVar("T")
AWAY = (DatabaseUnavailable, StatementTimedOut)

# The last answers kept for when the database is away, per kind: an event list is up to the
# dashboard's window (500 events, ~1 MB), and every search or filter the operator tries is
# another list, so only the lists of the last few filters are kept, and the last details opened.
KEPT_EVENT_LISTS = 4
KEPT_DETAILS = 16
# A card view lists at most this many of the card's events (a card in a storm has thousands).
CARD_EVENTS = 500


class LastAnswers:
    """The last answer per key for at most `size` keys; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._answers: OrderedDict[Any, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Any, default: T) -> T:
        if key not in self._answers:
            return default
        self._answers.move_to_end(key)
        answer: T = self._answers[key]
        return answer

    def put(self, key: Any, answer: Any) -> None:
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)


@dataclass(eq=False)
class Operations:
    """Reads fall back to the last answer when the database is away; actions raise ActionRefused."""

    events: EventRepository
    health: HealthRepository
    cycles: ManualCycles
    actor: Actor
    _: KW_ONLY
    viewer: bool
    on_away: Callable[[str], None]
    on_change: Callable[[], None]
    # The event list and details come from `reads` (a hot standby) when given; actions always
    # go through `events` (the primary).
    reads: InitVar[EventRepository | None] = None
    _reads: EventRepository = field(init=False)
    _lists: LastAnswers = field(default_factory=lambda: LastAnswers(KEPT_EVENT_LISTS), init=False)
    _details: LastAnswers = field(default_factory=lambda: LastAnswers(KEPT_DETAILS), init=False)
    # The health history and the event counts.
    _trends: LastAnswers = field(default_factory=lambda: LastAnswers(2), init=False)

    def __post_init__(self, reads: EventRepository | None) -> None:
        self._reads = reads or self.events

    async def _read(
        self, cache: LastAnswers, key: Any, call: Callable[[], Awaitable[T]], empty: T
    ) -> T:
        try:
            result = await call()
        except AWAY as exc:
            self.on_away(str(exc))
            return cache.get(key, empty)
        cache.put(key, result)
        return result

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        return await self._read(
            self._lists, event_filter, lambda: self._reads.list(event_filter), []
        )

    async def health_history(self, since: datetime) -> list[HealthSnapshot]:
        return await self._read(self._trends, "history", lambda: self.health.history(since), [])

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        return await self._read(
            self._trends, "counts", lambda: self.health.counts_by_hour(since), []
        )

    async def event_detail(self, event_id: int) -> EventDetail:
        try:
            detail = await self._reads.detail(event_id)
        except AWAY as exc:
            self.on_away(str(exc))
            cached: EventDetail | None = self._details.get(event_id, None)
            if cached is None:
                raise Unavailable(str(exc)) from None
            return cached
        except DatabaseRefused as exc:
            raise ActionRefused(str(exc)) from None
        self._details.put(event_id, detail)
        return detail

    async def card(self, card_id: str) -> CardView:
        try:
            view = await self._reads.card(card_id, CARD_EVENTS)
        except AWAY as exc:
            self.on_away(str(exc))
            cached: CardView | None = self._details.get(("card", card_id), None)
            if cached is None:
                raise Unavailable(str(exc)) from None
            return cached
        except DatabaseRefused as exc:
            raise ActionRefused(str(exc)) from None
        self._details.put(("card", card_id), view)
        return view

    async def act(
        self, event_id: int, verb: Verb, note: str | None, actor: Actor | None = None
    ) -> Event:
        """One audited lifecycle action; the database's refusal becomes ActionRefused.

        `actor` is who acts when it is not this process's operator (an HTTP API token's name).

        The only place festmon refuses a viewer (the database's grants refuse it too). The
        change reaches every dashboard, this one included, once: through the change stream
        (the database's NOTIFY, or the poller, nudged now), never from here as well.
        """
        if self.viewer:
            raise ActionRefused("viewer mode is read-only: lifecycle actions are disabled")
        note = (note or "").strip() or None
        try:
            event = await self.events.apply(str(Verb(verb)), event_id, actor or self.actor, note)
        except EventNotFound:
            raise
        except AWAY as exc:
            self.on_away(str(exc))
            reason = str(exc).removeprefix("database unavailable: ")  # said once, not twice
            raise ActionRefused(f"the database is unavailable: {reason}") from None
        except DatabaseRefused as exc:
            raise ActionRefused(str(exc)) from None
        self.on_change()
        return event

    async def run_cycle(self) -> CycleResult:
        if self.viewer:
            raise ActionRefused("viewer mode is read-only: it cannot run a detection cycle")
        try:
            result = await self.cycles.run()
        except AWAY as exc:
            self.on_away(str(exc))
            raise ActionRefused(f"the detection cycle failed: {exc}") from None
        except (DatabaseRefused, BreakerOpen) as exc:
            raise ActionRefused(str(exc)) from None
        self.on_change()
        return result
