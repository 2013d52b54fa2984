"""The event list: what it shows, its filters, its search and its sort."""

from __future__ import annotations

import asyncio
import time

from festmon_tui.models import EventStatus, Severity
from festmon_tui.ui.screens.dashboard import SEARCH_DEBOUNCE_S, DashboardScreen
from festmon_tui.ui.widgets.event_table import EventTable
from festmon_tui.ui.widgets.filter_bar import FilterBar
from festmon_tui.ui.widgets.header_bar import HeaderBar
from tests.ui.fake_service import FakeMonitorService, make_event
from tests.ui.pilot import event_ids, make_app, settle, table_rows, until


def _summary(app: object) -> str:
    bar = app.screen.query_one(FilterBar)  # type: ignore[attr-defined]
    return str(bar.query_one("#filter-summary").render())


async def test_the_list_shows_active_events_worst_first_with_severity_as_a_word(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        rows = table_rows(app)
        assert [row[0] for row in rows] == [
            "CRITICAL",
            "CRITICAL",
            "HIGH",
            "MEDIUM",
            "MEDIUM",
            "INFO",
        ]
        assert event_ids(app)[:2] == [2, 1]  # two CRITICALs: newest first
        assert 6 not in event_ids(app)  # RESOLVED is not active
        first = rows[0]
        assert first[2:8] == ["tx failure", "card-00002", "8.00", "3m", "OPEN", "1"]


async def test_the_first_paint_does_not_wait_for_the_database(service):
    release = asyncio.Event()

    async def slow_startup() -> None:
        await release.wait()

    app = make_app(service, startup=slow_startup)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.query_one(HeaderBar).is_mounted
        assert table_rows(app) == []
        release.set()
        await settle(pilot)
        assert len(table_rows(app)) == 6


async def test_s_steps_the_severity_filter_critical_then_at_least_high(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert {row[0] for row in table_rows(app)} == {"CRITICAL"}
        assert "severity CRITICAL" in _summary(app)
        await pilot.press("s")
        await settle(pilot)
        assert {row[0] for row in table_rows(app)} == {"CRITICAL", "HIGH"}
        assert "severity ≥HIGH" in _summary(app)


async def test_v_steps_the_status_filter_from_active_to_all_and_closed(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert 6 in event_ids(app)
        assert len(event_ids(app)) == 7
        await pilot.press("v", "v", "v")  # OPEN, INVESTIGATING, closed
        await settle(pilot)
        assert event_ids(app) == [6]
        assert "status closed" in _summary(app)


async def test_t_steps_the_type_filter(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("t")  # transaction_failure
        await settle(pilot)
        assert {row[2] for row in table_rows(app)} == {"tx failure"}
        await pilot.press("t")  # balance_discrepancy
        await settle(pilot)
        assert {row[2] for row in table_rows(app)} == {"balance"}


async def test_c_clears_every_filter_and_the_search(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s", "t", "slash", *"00002", "enter")
        await settle(pilot)
        assert event_ids(app) == [2]
        await pilot.press("c")
        await settle(pilot)
        assert len(event_ids(app)) == 6
        assert app.screen.query_one("#search").value == ""


async def test_c_after_a_search_loads_the_list_once(service):
    """Emptying the search box must not start its own (identical) reload 0.3 s later."""
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"00002", "enter")
        await settle(pilot)
        loads = service.calls.count("list_events")
        await pilot.press("c")
        pressed = time.monotonic()
        await until(pilot, lambda: len(event_ids(app)) == 6)
        # Past the search box's debounce: its timer would have fired by now.
        await until(pilot, lambda: time.monotonic() > pressed + SEARCH_DEBOUNCE_S + 0.1)
        await settle(pilot)
        assert service.calls.count("list_events") == loads + 1


async def test_slash_searches_card_ids_transaction_ids_and_event_ids(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"card-00004", "enter")
        await settle(pilot)
        assert event_ids(app) == [4]
        assert 'search "card-00004"' in _summary(app)
        app.screen.query_one("#search").value = ""
        await pilot.press("slash", *"abcd", "enter")  # a fragment of event 2's transaction id
        await settle(pilot)
        assert event_ids(app) == [2]


async def test_search_runs_while_typing_after_a_short_pause(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"00005")
        await until(pilot, lambda: event_ids(app) == [5])  # after the 0.3 s debounce
        assert app.focused is app.screen.query_one("#search")
        await pilot.press("escape")
        assert app.focused is app.screen.query_one("#events")


async def test_letters_typed_in_the_search_box_are_not_commands(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "q", "a", "d", "enter")
        await settle(pilot)
        assert app.is_running
        assert service.calls.count("act:acknowledge") == 0
        assert "run_cycle_now" not in service.calls


async def test_o_steps_the_sort_column_and_O_reverses_it(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("o")  # age: newest first
        await pilot.pause()
        assert event_ids(app) == [2, 1, 3, 4, 5, 7]
        assert "sort age ▼" in _summary(app)
        await pilot.press("O")  # oldest first
        await pilot.pause()
        assert event_ids(app) == [7, 5, 4, 3, 1, 2]
        await pilot.press("o")  # occurrences: most first
        await pilot.pause()
        assert event_ids(app)[0] == 4


async def test_clicking_a_column_header_sorts_by_it(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#events", EventTable)
        header = table.columns[4]  # amount
        await pilot.click("#events", offset=(sum(c.render_width for c in table.columns[:4]) + 2, 0))
        await pilot.pause()
        assert header.key == "amount"
        assert event_ids(app)[:2] == [1, 2]  # 12.50 before 8.00


async def test_the_cursor_stays_on_the_same_event_when_the_list_reloads(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")
        assert app.screen.selected_event().event_id == 3
        service.insert(make_event(50, severity=Severity.CRITICAL))
        await until(pilot, lambda: 50 in event_ids(app))
        assert app.screen.selected_event().event_id == 3


async def test_a_window_larger_than_the_limit_says_there_are_more():
    events = [make_event(i, status=EventStatus.OPEN) for i in range(1, 40)]
    app = make_app(FakeMonitorService(events), window=25)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert len(table_rows(app)) == 25
        assert _summary(app).startswith("25+ events")
