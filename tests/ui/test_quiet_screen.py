"""A quiet screen (issue 17.1): what the dashboard writes to its terminal when little changes.

Headless, Textual writes nothing; the tests catch each screen update the app would write and
render it to bytes as the terminal would get them (App._display's own CompositorUpdate). The
clock is the test's: each "second" is one tick of the app's own timer callback.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from textual._compositor import CompositorUpdate

from festmon_tui.models import EventFilter, Severity
from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.widgets.event_table import EventTable
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.quiet import coarse_age, coarse_countdown, next_change
from tests.ui.fake_service import NOW, FakeMonitorService, healthy_state, make_event
from tests.ui.pilot import screen_text, settle, table_rows, until


class FreshObjects(FakeMonitorService):
    """Every load returns new Event objects, as the database does."""

    async def list_events(self, event_filter: EventFilter) -> list[Any]:
        return [replace(e) for e in await super().list_events(event_filter)]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _app(service: FakeMonitorService, clock: Clock) -> FestmonApp:
    return FestmonApp(service, DashboardConfig(), clock=clock)


class Wire:
    """Bytes of every screen update the app hands to its terminal."""

    def __init__(self, app: FestmonApp) -> None:
        self.bytes = 0
        display = app._display

        def counting(screen: Any, renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate):
                self.bytes += len(renderable.render_segments(app.console).encode())
            display(screen, renderable)

        app._display = counting  # type: ignore[method-assign]


async def _run_seconds(pilot: Any, app: FestmonApp, clock: Clock, seconds: int) -> None:
    """`seconds` ticks of the clock; a reload of the list every 10 (reload_interval_s)."""
    for second in range(1, seconds + 1):
        clock.now += timedelta(seconds=1)
        app._tick()
        if second % 10 == 0:
            app._auto_reload()
            app._auto_trends()
        await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_an_idle_dashboard_writes_under_a_kilobyte_a_second(size):
    service, clock = FreshObjects(), Clock()
    app = _app(service, clock)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _run_seconds(pilot, app, clock, 5)  # the charts mounted, the first ticks done
        wire = Wire(app)
        await _run_seconds(pilot, app, clock, 60)
        # Before: every reload rewrote every row, every tick the header, health and jobs.
        assert wire.bytes < 60 * 1000, f"{wire.bytes} bytes in 60 s"


async def test_a_reload_that_brings_the_same_events_repaints_no_row():
    service, clock = FreshObjects(), Clock()
    app = _app(service, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(EventTable)
        before = table.repainted_lines
        app.action_reload_data()
        await settle(pilot)
        assert table.repainted_lines == before


async def test_a_new_event_repaints_the_rows_it_moves_not_the_header_or_other_rows():
    service, clock = FreshObjects(), Clock()
    app = _app(service, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(HeaderBar)
        table = app.screen.query_one(EventTable)
        header_before, rows_before = header.repainted_lines, table.repainted_lines
        # A LOW event sorts after every CRITICAL, HIGH and MEDIUM row: those are not repainted,
        # only its own row and the rows it pushes down (the INFO one).
        service.insert(make_event(8, severity=Severity.LOW))  # 8 minutes old: "8m"
        await until(pilot, lambda: 8 in [int(row[1]) for row in table_rows(app)])
        await settle(pilot)
        ids = [int(row[1]) for row in table_rows(app)]
        assert header.repainted_lines == header_before
        assert table.repainted_lines - rows_before == len(ids) - ids.index(8) == 2


async def test_ages_on_screen_follow_the_clock_when_their_shown_text_changes():
    service, clock = FreshObjects([make_event(1, detection_timestamp=NOW)]), Clock()
    app = _app(service, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert table_rows(app)[0][5] == "<10s"
        await _run_seconds(pilot, app, clock, 20)
        assert table_rows(app)[0][5] == "20s"
        await _run_seconds(pilot, app, clock, 60)
        assert table_rows(app)[0][5] == "1m"
        assert "21:31" in screen_text(app.screen.query_one(HeaderBar))


async def test_the_header_clock_shows_minutes_so_a_tick_within_a_minute_writes_nothing():
    clock = Clock()
    service = FakeMonitorService(state=healthy_state(refreshed_at=NOW))
    app = _app(service, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(HeaderBar)
        before = header.repainted_lines
        for _ in range(8):  # 21:30:01 … 21:30:08: same minute, data age still "<10s"
            clock.now += timedelta(seconds=1)
            app._tick()
            await settle(pilot)
        assert header.repainted_lines == before
        clock.now += timedelta(seconds=2)  # 10 s: the data age moves to "10s"
        app._tick()
        await settle(pilot)
        assert header.repainted_lines == before + 1
        assert "data 10s old" in screen_text(header)


def test_coarse_ages_and_countdowns_move_in_steps():
    at = NOW
    assert [coarse_age(at - timedelta(seconds=s), at) for s in (0, 9, 10, 19, 59, 60, 3599)] == [
        "<10s",
        "<10s",
        "10s",
        "10s",
        "50s",
        "1m",
        "59m",
    ]
    assert coarse_age(at - timedelta(hours=5), at) == "5h"
    assert coarse_age(at - timedelta(days=3), at) == "3d"
    # Rounded up: a countdown never says less time than is left.
    assert [coarse_countdown(at + timedelta(seconds=s), at) for s in (0, 5, 10, 11, 59, 90)] == [
        "due",
        "in <10s",
        "in 10s",
        "in 20s",
        "in 1m",
        "in 1m",
    ]
    assert next_change(at - timedelta(seconds=12), at) == 8
    assert next_change(at - timedelta(seconds=61), at) == 59
