"""The line above the event list: counts, active filters, sort, data age, and the search box."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input

from festmon_tui.ui.display import clean, count, local_time
from festmon_tui.ui.filters import (
    SEVERITY_STEPS,
    STATUS_STEPS,
    TYPE_STEPS,
    SortOrder,
    describe,
    step_label,
)
from festmon_tui.ui.view_state import EventWindow
from festmon_tui.ui.widgets.quiet import QuietLines


def _stale(window: EventWindow, tz: tzinfo, now: datetime) -> str:
    """Said only when the list could not be refreshed (the header shows the data's age)."""
    if not window.error:
        return ""
    when = f" · as of {local_time(window.loaded_at, tz, now)}" if window.loaded_at else ""
    return " · NOT REFRESHED" + when  # the header says why (unreachable, no schema, …)


def summary(window: EventWindow, order: SortOrder, shown: int, tz: tzinfo, now: datetime) -> Text:
    """'1 000+ events · status active · … · sort severity ▼' (the longest form)."""
    return summary_forms(window, order, shown, tz, now)[0]


def summary_forms(
    window: EventWindow, order: SortOrder, shown: int, tz: tzinfo, now: datetime
) -> list[Text]:
    """The summary from the longest form to the shortest: the bar shows the longest that fits,
    so that a narrow terminal loses words ("status", "type all"), never the state itself
    ("so…", "type tx failu…": issue 17.2)."""
    flt = window.event_filter
    more = "+" if window.more else ""
    stale = _stale(window, tz, now)
    full = Text(f"{count(shown)}{more} events · {describe(flt)} · sort {order.label}{stale}")
    values = [
        step_label(STATUS_STEPS, flt.statuses),
        step_label(SEVERITY_STEPS, flt.severities),
        step_label(TYPE_STEPS, flt.event_types),
    ]
    named = [
        f"{name} {value}"
        for name, value in zip(("status", "severity", "type"), values, strict=True)
        if value != "all"
    ]
    search = f'"{clean(flt.search, max_len=30)}"' if flt.search else ""
    found = [f"search {search}"] if search else []
    terse = [v for v in values if v != "all"] + ([search] if search else [])
    arrow = "▲" if order.inverted else "▼"
    stale_short = " · NOT REFRESHED" if window.error else ""
    return [
        full,
        Text(
            " · ".join([f"{count(shown)}{more} events", *named, *found, f"sort {order.label}"])
            + (" · NOT REFRESHED" if window.error else "")
        ),
        # The status without its name (it always has one), the other filters still named.
        Text(
            " · ".join(
                [f"{count(shown)}{more}", values[0], *named[1:], *found, f"sort {order.label}"]
                if named and named[0].startswith("status ")
                else [f"{count(shown)}{more}", *named, *found, f"sort {order.label}"]
            )
            + stale_short
        ),
        Text(
            " · ".join([f"{count(shown)}{more}", *terse, f"{order.column.value}{arrow}"])
            + stale_short
        ),
    ]


def fitting(forms: Sequence[Text], width: int) -> Text:
    """The first form that fits in `width` cells, else the shortest (cut with an ellipsis)."""
    for form in forms:
        if cell_len(form.plain) <= width:
            return form
    return forms[-1]


class FilterSummary(QuietLines):
    """The summary, in the longest form that fits; repainted only when that text changes."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.forms: list[Text] = [Text("loading events…")]

    def lines(self) -> list[Text]:
        return [fitting(self.forms, self.size.width)]


class FilterBar(Horizontal):
    """Summary on the left, search on the right (`/` focuses it, Enter or Escape leaves it)."""

    def compose(self) -> ComposeResult:
        yield FilterSummary(id="filter-summary")
        yield Input(placeholder="/ search card or tx id", id="search", compact=True)

    def show(self, forms: Text | list[Text]) -> None:
        summary = self.query_one(FilterSummary)
        summary.forms = [forms] if isinstance(forms, Text) else forms
        summary.update_lines()
