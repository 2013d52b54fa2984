"""The event list widget on screen: the cursor, paging, opening, clicking, hostile strings."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from festmon_tui.models import Severity
from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.widgets.event_table import EventTable
from tests.ui.fake_service import FakeMonitorService, make_event
from tests.ui.pilot import event_ids, make_app, settle, until

HOSTILE_CARD = "[b]x[/b]\x1b[2J\x07"


def _table(app: FestmonApp) -> EventTable:
    return app.screen.query_one("#events", EventTable)


def _screen_lines(app: FestmonApp) -> list[str]:
    """The table's lines as drawn now (header first), plain text."""
    table = _table(app)
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


def _cursor_line(app: FestmonApp) -> str:
    """The drawn line of the cursor row; fails when that row is not on screen."""
    table = _table(app)
    y = table.cursor_row - table.scroll_offset.y + 1
    assert 1 <= y < table.scrollable_content_region.height, "the cursor row is off screen"
    return table.render_line(y).text


def _many(count: int) -> FakeMonitorService:
    # Ids 1..count, worst first in id order (same severity, newest first).
    return FakeMonitorService([make_event(i, card_id=f"card-{i:05d}") for i in range(1, count + 1)])


async def _selected(pilot: Pilot[Any]) -> int:
    await pilot.pause()
    event = pilot.app.screen.selected_event()
    assert event is not None
    return event.event_id


async def test_only_the_visible_rows_are_drawn_and_the_header_stays_on_top() -> None:
    app = make_app(_many(120))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        lines = _screen_lines(app)
        assert lines[0].split()[:3] == ["severity", "▼", "#"]
        shown = [int(line.split()[1]) for line in lines[1:]]
        assert shown == event_ids(app)[: len(shown)] and len(shown) == len(lines) - 1
        await pilot.press("end")
        lines = _screen_lines(app)
        assert lines[0].split()[:3] == ["severity", "▼", "#"]  # still the header
        assert int(lines[-1].split()[1]) == event_ids(app)[-1]


async def test_page_keys_move_the_cursor_a_screen_and_keep_it_on_screen() -> None:
    app = make_app(_many(120))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = _table(app)
        page = table.scrollable_content_region.height - 1
        ids = event_ids(app)
        await pilot.press("pagedown")
        assert await _selected(pilot) == ids[page]
        assert str(ids[page]) in _cursor_line(app).split()
        await pilot.press("pagedown", "pagedown")
        assert await _selected(pilot) == ids[3 * page]
        assert str(ids[3 * page]) in _cursor_line(app).split()
        await pilot.press("pageup")
        assert await _selected(pilot) == ids[2 * page]
        assert str(ids[2 * page]) in _cursor_line(app).split()
        await pilot.press("end")
        assert await _selected(pilot) == ids[-1]
        assert str(ids[-1]) in _cursor_line(app).split()
        await pilot.press("up")
        assert await _selected(pilot) == ids[-2]
        await pilot.press("home")
        assert await _selected(pilot) == ids[0]
        assert table.scroll_offset.y == 0
        await pilot.press("up")  # already on the first row: stays
        assert await _selected(pilot) == ids[0]


async def test_the_chosen_event_keeps_the_cursor_when_reloads_move_its_row() -> None:
    service = _many(120)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("pagedown", "down")
        chosen = await _selected(pilot)
        # Ten worse events arrive above it: its row moves down, the cursor goes with it.
        for event_id in range(1000, 1010):
            service.insert(make_event(event_id, severity=Severity.CRITICAL))
        await until(pilot, lambda: 1009 in event_ids(app))
        assert await _selected(pilot) == chosen
        assert event_ids(app).index(chosen) == _table(app).cursor_row
        assert str(chosen) in _cursor_line(app).split()
        # A filter change that keeps it (status: active -> all): still on it.
        await pilot.press("v")
        await settle(pilot)
        assert "status all" in str(app.screen.query_one("#filter-summary").render())
        assert await _selected(pilot) == chosen
        assert str(chosen) in _cursor_line(app).split()


async def test_until_the_operator_moves_the_cursor_it_stays_on_the_top_row() -> None:
    service = _many(10)
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert await _selected(pilot) == event_ids(app)[0]
        service.insert(make_event(500, severity=Severity.CRITICAL))
        await until(pilot, lambda: 500 in event_ids(app))
        assert await _selected(pilot) == 500  # the new worst event, on the top row


async def test_enter_opens_the_event_under_the_cursor() -> None:
    app = make_app(_many(30))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")
        chosen = await _selected(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        assert app.screen.event_id == chosen


async def test_a_click_puts_the_cursor_on_a_row_and_a_second_click_opens_it() -> None:
    app = make_app(_many(30))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        ids = event_ids(app)
        await pilot.click("#events", offset=(5, 4))  # the 4th row below the header
        assert await _selected(pilot) == ids[3]
        assert not isinstance(app.screen, EventDetailScreen)
        await pilot.click("#events", offset=(5, 4))
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        assert app.screen.event_id == ids[3]


async def test_hostile_card_ids_are_drawn_as_their_literal_text() -> None:
    service = FakeMonitorService([make_event(1, card_id=HOSTILE_CARD, severity=Severity.HIGH)])
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        line = _screen_lines(app)[1]
        assert "[b]x[/b]\\x1b[2J\\x07" in line
        assert "\x1b" not in line and "\x07" not in line
        screenshot = app.export_screenshot()
        assert "[b]x[/b]" in screenshot.replace("&#160;", " ")
