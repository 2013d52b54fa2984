"""The main screen: header, health, breaker and jobs, the event list with filters, trends."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Key
from textual.timer import Timer
from textual.widgets import Input

from festmon_tui.models import ChangeKind, Event, EventFilter, MonitorState, Severity
from festmon_tui.ui.commands import Scope, bindings
from festmon_tui.ui.filters import (
    DEFAULT_FILTER,
    SEVERITY_STEPS,
    STATUS_STEPS,
    TYPE_STEPS,
    SortOrder,
    next_step,
    sort_events,
    with_search,
)
from festmon_tui.ui.screens.event_screen import EventScreen
from festmon_tui.ui.view_state import (
    CycleProgress,
    EventChosen,
    EventWindow,
    ExportRequested,
    FiltersChanged,
    TrendRangeChanged,
    Trends,
)
from festmon_tui.ui.widgets.breaker_pane import BreakerPane
from festmon_tui.ui.widgets.catch_up_bar import CatchUpBar
from festmon_tui.ui.widgets.event_table import EventTable
from festmon_tui.ui.widgets.filter_bar import FilterBar, summary_forms
from festmon_tui.ui.widgets.footer import KeysFooter
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.health_pane import HealthPane
from festmon_tui.ui.widgets.status_line import StatusLine
from festmon_tui.ui.widgets.storms import Storm, StormBar, StormWatch, collapse
from festmon_tui.ui.widgets.trends import TrendsPane, live_trends

if TYPE_CHECKING:
    from festmon_tui.ui.app import FestmonApp

log = logging.getLogger(__name__)

SEARCH_DEBOUNCE_S = 0.3
_SEVERITIES = {severity.value: severity for severity in Severity}


class DashboardScreen(EventScreen):
    """Routes: app data down into the panes, operator intentions up as messages."""

    BINDINGS = bindings(Scope.DASHBOARD)
    COMMAND_SCOPES = (Scope.EVENT, Scope.DASHBOARD)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(self, *, viewer: bool) -> None:
        super().__init__(viewer=viewer)
        self.order = SortOrder()
        self._search_timer: Timer | None = None
        self.storm_watch = StormWatch()
        self.storms: list[Storm] = []
        self.storms_expanded = False

    @property
    def festmon(self) -> FestmonApp:
        return cast("FestmonApp", self.app)

    def compose(self) -> ComposeResult:
        tz = self.festmon.config.timezone
        yield HeaderBar(tz, viewer=self.viewer, id="header")
        yield CatchUpBar(id="catch-up")
        with Horizontal(id="top"):
            yield HealthPane(tz, id="health")
            yield BreakerPane(tz, id="breaker")
        yield FilterBar(id="filter-bar")
        yield StormBar(id="storms")
        yield EventTable(id="events")
        yield TrendsPane(tz, id="trends")
        yield StatusLine(id="status-line")
        yield KeysFooter(compact=True)

    def on_mount(self) -> None:
        app = self.festmon
        self.query_one("#health").border_title = "health"
        self.query_one("#breaker").border_title = "breaker & jobs"
        self.query_one("#trends").border_title = "trends"
        self.watch(app, "monitor_state", self._show_state)
        self.watch(app, "window", self._show_events)
        self.watch(app, "trends", self._show_trends)
        self.watch(app, "cycle", self._show_cycle)
        self.watch(app, "now", self._tick)
        self.watch(app, "paused", self._show_pause)
        self.watch(app, "missed", self._show_pause)
        self.storm_watch.threshold = app.config.storm_threshold_per_min
        self.follow_inserts()
        self.query_one(EventTable).focus()

    # Named "changes": like the app's own subscription it lives as long as the screen.
    @work(group="changes", exit_on_error=False)
    async def follow_inserts(self) -> None:
        """Every new event, as it is announced, counts towards its rule's storm rate."""
        try:
            async for change in self.festmon.service.changes():
                if change.kind is ChangeKind.EVENT_INSERTED and change.event_id is not None:
                    severity = _SEVERITIES.get(change.severity or "")
                    when = self.festmon.clock()
                    self.storm_watch.record(
                        change.event_id, change.event_type or "?", when, severity
                    )
        except Exception:
            log.exception("the storm counter's change stream failed; the list still counts")

    # No on_resize here: a message the screen posts to itself on every Resize keeps two pending
    # Resizes of different sizes from merging, and they re-post each other forever. The panes
    # follow their own size and the breakpoint classes (BreakerPane.notify_style_update).

    # ---- data down -------------------------------------------------------------------------

    def _show_state(self, state: MonitorState) -> None:
        now = self.festmon.now
        header = self.query_one(HeaderBar)
        header.state, header.now = state, now
        self.query_one(HealthPane).show(state, now)
        self.query_one(CatchUpBar).show(state.catch_up)
        breaker = self.query_one(BreakerPane)
        breaker.state, breaker.now = state, now

    def _show_events(self, window: EventWindow) -> None:
        now = self.festmon.now
        self.storm_watch.record_window(window.events, self.festmon.clock())
        self._show_storms(self.storm_watch.update(self.festmon.clock()))
        rows = sort_events(window.events, self.order)
        if self.storms and not self.storms_expanded:
            rows = collapse(rows, self.storms)
        self.query_one(EventTable).show(rows, self.order, now)
        self._show_trends(self.festmon.trends)  # the trends follow the list (issue 17.8)
        self.query_one(FilterBar).show(
            summary_forms(
                window, self.order, len(rows), self.festmon.config.timezone, self.festmon.now
            )
        )

    def _show_trends(self, trends: Trends | None) -> None:
        if trends is not None:
            live = live_trends(trends, self.festmon.window.events)
            self.query_one(TrendsPane).show(live, self.festmon.now)
            self.query_one(HealthPane).show_history(trends.snapshots)

    def _show_cycle(self, progress: CycleProgress) -> None:
        self.query_one(BreakerPane).cycle = progress

    def _show_storms(self, storms: list[Storm]) -> None:
        self.storms = storms
        self.query_one(StormBar).show(storms, expanded=self.storms_expanded)
        busiest = sorted(storms, key=lambda storm: -storm.per_min)
        self.query_one(HeaderBar).storms = tuple(storm.rule for storm in busiest)

    def _tick(self, now: datetime) -> None:
        storms = self.storm_watch.update(self.festmon.clock())
        if [s.event_type for s in storms] != [s.event_type for s in self.storms]:
            self._show_events(self.festmon.window)  # a storm began or ended: fold or unfold
        elif storms != self.storms:
            self._show_storms(storms)
        self.query_one(HeaderBar).now = now
        self.query_one(BreakerPane).now = now
        self.query_one(HealthPane).tick(now)

    def _show_pause(self) -> None:
        header = self.query_one(HeaderBar)
        header.paused, header.missed = self.festmon.paused, self.festmon.missed

    # ---- the selected event ----------------------------------------------------------------

    def selected_event(self) -> Event | None:
        return self.query_one(EventTable).selected_event

    def action_open_event(self) -> None:
        event = self.selected_event()
        if event is not None:
            self.post_message(EventChosen(event.event_id))

    @on(EventTable.RowSelected, "#events")
    def _row_selected(self, message: EventTable.RowSelected) -> None:
        message.stop()
        self.action_open_event()

    # ---- filters, search, sort -------------------------------------------------------------

    def _filter(self) -> EventFilter:
        return self.festmon.window.event_filter

    def _apply(self, event_filter: EventFilter) -> None:
        self.post_message(FiltersChanged(event_filter))

    def action_cycle_severity(self) -> None:
        flt = self._filter()
        self._apply(replace(flt, severities=next_step(SEVERITY_STEPS, flt.severities)))

    def action_cycle_type(self) -> None:
        flt = self._filter()
        self._apply(replace(flt, event_types=next_step(TYPE_STEPS, flt.event_types)))

    def action_cycle_status(self) -> None:
        flt = self._filter()
        self._apply(replace(flt, statuses=next_step(STATUS_STEPS, flt.statuses)))

    def action_clear_filters(self) -> None:
        self.query_one("#search", Input).value = ""
        self._apply(replace(DEFAULT_FILTER, limit=self._filter().limit))

    def action_search_events(self) -> None:
        self.query_one("#search", Input).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, message: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        text = message.value
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE_S, lambda: self._search_typed(text))

    def _search_typed(self, text: str) -> None:
        # Nothing to do when the list has this search already: `c` empties the box after
        # clearing the filters, and a second, identical reload would follow the first.
        wanted = with_search(self._filter(), text)
        if wanted != self._filter():
            self._apply(wanted)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, message: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._apply(with_search(self._filter(), message.value))
        self.query_one(EventTable).focus()

    def on_key(self, event: Key) -> None:
        if event.key == "escape" and self.focused is self.query_one("#search", Input):
            event.stop()
            self.query_one(EventTable).focus()

    def _resort(self, order: SortOrder) -> None:
        self.order = order
        self._show_events(self.festmon.window)

    def action_toggle_storms(self) -> None:
        self.storms_expanded = not self.storms_expanded
        self._show_events(self.festmon.window)

    def action_cycle_sort(self) -> None:
        self._resort(self.order.next_column())

    def action_reverse_sort(self) -> None:
        self._resort(self.order.reversed())

    @on(EventTable.HeaderSelected, "#events")
    def _header_selected(self, message: EventTable.HeaderSelected) -> None:
        column = EventTable.sort_column(message.column_key)
        if column is not None:
            same = column == self.order.column
            self._resort(self.order.reversed() if same else SortOrder(column))

    # ---- trends and export -----------------------------------------------------------------

    def action_cycle_range(self) -> None:
        self.post_message(TrendRangeChanged(self.festmon.trend_range.next()))

    def action_export_csv(self) -> None:
        self.post_message(ExportRequested("csv"))

    def action_export_json(self) -> None:
        self.post_message(ExportRequested("json"))
