"""The line above the event list: counts, active filters, sort, data age, and the search box."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Static

from festmon_tui.ui.display import count, local_time
from festmon_tui.ui.filters import SortOrder, describe
from festmon_tui.ui.view_state import EventWindow


def summary(window: EventWindow, order: SortOrder, shown: int, tz: tzinfo, now: datetime) -> Text:
    """'1 000+ events · status active · … · sort severity ▼ · as of 12:04:31'."""
    noun = "event" if shown == 1 and not window.more else "events"
    total = f"{count(shown)}{'+' if window.more else ''} {noun}"
    line = Text(total + " · " + describe(window.event_filter) + f" · sort {order.label}")
    if window.error:
        line.append(" · NOT REFRESHED (database unavailable)")
    if window.loaded_at is not None:
        line.append(f" · as of {local_time(window.loaded_at, tz, now)}")
    return line


class FilterBar(Horizontal):
    """Summary on the left, search on the right (`/` focuses it, Enter or Escape leaves it)."""

    def compose(self) -> ComposeResult:
        yield Static(Text("loading events…"), id="filter-summary")
        yield Input(placeholder="/ search card or tx id", id="search", compact=True)

    def show(self, line: Text) -> None:
        # One line of fixed size (CSS): no layout pass of the whole screen for a new summary.
        self.query_one("#filter-summary", Static).update(line, layout=False)
