"""New CRITICAL events announced once each; a burst in one toast that later news joins."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from festmon_tui.models import Event, Severity
from festmon_tui.ui.display import type_label

GATHER_S = 0.5
TOAST_S = 15.0
SHOWN = 6

Show = Callable[[str, str, float], None]  # message, title, timeout_s
Later = Callable[[float, Callable[[], None]], object]


class CriticalNews:
    """Gathers announcements for GATHER_S, then shows them; a toast still up is replaced."""

    def __init__(
        self,
        started_at: datetime,
        show: Show,
        clear: Callable[[], None],
        later: Later,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.started_at = started_at
        self.announced: set[int] = set()
        self._show, self._clear, self._later, self._clock = show, clear, later, clock
        self._waiting: list[str] = []
        self._shown: list[str] = []
        self._shown_until = -float("inf")

    @property
    def waiting(self) -> bool:
        """Announcements gathered and not shown yet."""
        return bool(self._waiting)

    def announce(self, event_id: int | None, event_type: str | None) -> None:
        if event_id is None or event_id in self.announced:
            return
        self.announced.add(event_id)
        if not self._waiting:
            self._later(GATHER_S, self.flush)
        what = type_label(event_type) if event_type else "event"
        self._waiting.append(f"#{event_id} {what}")

    def announce_new(self, events: Iterable[Event]) -> None:
        """CRITICAL events detected since the dashboard started (a reload may be the first news)."""
        for event in events:
            if event.severity is Severity.CRITICAL and event.detection_timestamp >= self.started_at:
                self.announce(event.event_id, event.event_type)

    def flush(self) -> None:
        news, self._waiting = self._waiting, []
        if not news:
            return
        if self._clock() < self._shown_until:
            # The previous toast is still up: one toast lists it all, never a stack over the list.
            news = self._shown + news
            self._clear()
        title = "New CRITICAL event" if len(news) == 1 else f"{len(news)} new CRITICAL events"
        more = f" and {len(news) - SHOWN} more" if len(news) > SHOWN else ""
        self._show(
            f"{', '.join(news[:SHOWN])}{more} — in the list (s shows CRITICAL only)", title, TOAST_S
        )
        self._shown, self._shown_until = news, self._clock() + TOAST_S
