"""The database going away, hostile strings from the database, and small terminals."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from festmon_tui.models import (
    BreakerState,
    BreakerStatus,
    ConnectionState,
    HealthSnapshot,
    HealthStatus,
    Severity,
    Verb,
)
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.widgets.breaker_pane import BreakerPane
from festmon_tui.ui.widgets.filter_bar import FilterBar
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.health_pane import HealthSummary
from tests.ui.fake_service import NOW, FakeMonitorService, healthy_state, make_event
from tests.ui.pilot import event_ids, make_app, screen_text, settle, table_rows, until

HOSTILE_CARD = "[bold red]x[/]\x1b]52;c;AAAA\x07"
SHOWN_CARD = "[bold red]x[/]\\x1b]52;c;AAAA\\x07"


def _down(service: FakeMonitorService) -> None:
    service.available = False
    service.set_state(
        healthy_state(
            connection=ConnectionState.UNAVAILABLE,
            last_error="connection refused",
            refreshed_at=NOW - timedelta(seconds=45),
            breaker=BreakerStatus(
                "database",
                BreakerState.OPEN,
                5,
                last_error="connection refused",
                seconds_to_probe=42,
            ),
        )
    )


async def test_a_lost_database_keeps_the_last_data_and_says_how_old_it_is(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        before = table_rows(app)
        _down(service)
        await until(pilot, lambda: app.monitor_state.connection is ConnectionState.UNAVAILABLE)
        await pilot.press("R", "s")  # reloads and filter changes fail quietly
        await settle(pilot)
        assert app.is_running
        assert table_rows(app) == before  # the last known rows stay on screen
        header = screen_text(app.screen.query_one(HeaderBar))
        assert (
            "DATABASE UNAVAILABLE" in header and "last data 40s old" in header
        )  # 45 s, in 10 s steps
        assert "NOT REFRESHED" in screen_text(
            app.screen.query_one(FilterBar).query_one("#filter-summary")
        )
        breaker = screen_text(app.screen.query_one(BreakerPane))
        assert "OPEN" in breaker and "next probe in 50s" in breaker  # 42 s, rounded up
        assert "(last known)" in screen_text(app.screen.query_one(HealthSummary))


async def test_the_dashboard_recovers_by_itself_when_the_database_returns(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        _down(service)
        await until(pilot, lambda: app.monitor_state.connection is ConnectionState.UNAVAILABLE)
        service.available = True
        service.insert(make_event(80, severity=Severity.HIGH))
        service.set_state(healthy_state())
        await until(pilot, lambda: 80 in event_ids(app))
        assert "connected" in screen_text(app.screen.query_one(HeaderBar))
        assert app.window.error is None


async def test_a_failing_startup_is_reported_and_the_dashboard_stays_up(service):
    async def broken() -> None:
        raise RuntimeError("embedded server could not start: disk full")

    app = make_app(service, startup=broken)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.is_running
        assert any("disk full" in n.message for n in app._notifications)


async def test_markup_and_escape_sequences_from_the_database_are_shown_literally():
    event = make_event(
        90,
        severity=Severity.CRITICAL,
        card_id=HOSTILE_CARD,
        detection_algorithm="balance_mismatch_detection",
        event_data={"actual_balance": "[blink]1[/]", "note\x1b[2J": "\x1b]0;pwned\x07"},
        resolution_notes="[link=http://evil]click[/link]",
    )
    service = FakeMonitorService([event])
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        (row,) = table_rows(app)
        assert row[3] == SHOWN_CARD[:21] + "…"  # the list cuts long ids; the detail has it all
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        body = screen_text(app.screen.query_one("#detail-body"), width=200)
        assert SHOWN_CARD in body
        assert "[blink]1[/]" in body and "\\x1b]0;pwned\\x07" in body and "note\\x1b[2J" in body
        assert "[link=http://evil]click[/link]" in body
        screenshot = app.export_screenshot()
        assert "\x1b" not in screenshot and "\x07" not in screenshot


async def test_80x24_uses_the_compact_layout_and_keeps_every_essential_line(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.has_class("-narrow") and screen.has_class("-short")
        assert not screen.query_one("#trends-charts").display
        assert screen.query_one("#trends-line").region.height == 1
        assert screen.query_one(HeaderBar).region.height <= 2
        health = screen.query_one(HealthSummary)
        assert health.region.height == 2 and "HEALTHY" in screen_text(health, width=78)
        assert screen.query_one(BreakerPane).region.height == 2  # the breaker, then every job
        assert screen.query_one("#events").region.height >= 10
        assert len(table_rows(app)) == 6


async def test_wide_terminals_show_the_charts(service):
    app = make_app(service)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        assert app.screen.has_class("-wide") and app.screen.has_class("-tall")
        assert app.screen.query_one("#trends-charts").display
        assert app.screen.query_one("#chart-transactions").region.height > 8


async def test_an_event_changed_by_another_operator_updates_an_open_detail(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await service.act(2, Verb.ACKNOWLEDGE)  # someone else, from another dashboard
        await until(
            pilot, lambda: "INVESTIGATING" in screen_text(app.screen.query_one("#detail-title"))
        )


async def test_a_state_without_a_scheduler_says_so(service):
    service.set_state(replace(healthy_state(), breaker=None, jobs=()))
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "no scheduler in this process" in screen_text(app.screen.query_one(BreakerPane))


async def test_trend_points_from_a_database_clock_ahead_of_ours_still_draw(service):
    service.snapshots = [
        HealthSnapshot(1, NOW + timedelta(hours=3), HealthStatus.HEALTHY, 10, 10, 0, Decimal(100))
    ]
    app = make_app(service)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        chart = app.screen.query_one("#chart-transactions")
        assert "chart needs more room" not in str(chart.render())
