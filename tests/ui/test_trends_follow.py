"""Trends that follow the screen (issue 17.8): live events in the summary and the severity chart
before the next health snapshot refreshes the hourly counts; sane axes with no data."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from textual.widgets import Sparkline

from festmon_tui.models import EventType, HealthSnapshot, HealthStatus, Severity
from festmon_tui.ui.view_state import TrendRange, Trends
from festmon_tui.ui.widgets.trends import TrendsLine, live_trends
from tests.ui.fake_service import NOW, FakeMonitorService, festival_events, make_event
from tests.ui.pilot import make_app, screen_text, settle, until

HOUR = NOW.replace(minute=0, second=0, microsecond=0)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _snapshot(minutes_ago: int, transactions: int = 0) -> HealthSnapshot:
    return HealthSnapshot(
        snapshot_id=minutes_ago,
        snapshot_timestamp=NOW - timedelta(minutes=minutes_ago),
        overall_health_status=HealthStatus.HEALTHY,
        total_transactions_last_hour=transactions,
        success_rate_percent=Decimal("100.00"),
    )


def _service_behind_the_list() -> FakeMonitorService:
    """The hourly counts were refreshed 10 minutes ago, with 1 HIGH; the list has since got
    the two CRITICAL events (3 and 7 minutes old) of festival_events()."""
    service = FakeMonitorService()
    service.snapshots = [_snapshot(10, 900), _snapshot(70, 800)]
    service.counts = [(HOUR - timedelta(hours=1), "HIGH", 1)]
    return service


def test_events_after_the_latest_snapshot_join_their_hour_once():
    trends = Trends(
        TrendRange.DAY,
        (_snapshot(10),),
        ((HOUR, "CRITICAL", 1),),
        loaded_at=NOW,
    )
    events = [
        make_event(1, severity=Severity.CRITICAL, detection_timestamp=NOW - timedelta(minutes=2)),
        make_event(2, severity=Severity.CRITICAL, detection_timestamp=NOW - timedelta(minutes=20)),
    ]
    merged = live_trends(trends, events)
    # Event 2 was detected before the snapshot: the hourly counts have it already.
    assert merged.counts == ((HOUR, "CRITICAL", 2),)
    assert live_trends(trends, []) is trends


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_trends_summary_counts_what_the_list_shows(size):
    app = make_app(_service_behind_the_list())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        line = screen_text(app.screen.query_one(TrendsLine), width=size[0])
        assert "…" not in line
        assert re.search(r"CRITICAL 2 HIGH 1|C2 H1", line), line


async def test_a_live_critical_reaches_the_trends_before_the_next_snapshot():
    service = _service_behind_the_list()
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        line = app.screen.query_one(TrendsLine)
        service.insert(
            make_event(
                50,
                event_type=EventType.RACE_CONDITION,
                severity=Severity.CRITICAL,
                detection_timestamp=NOW,
            )
        )
        await until(pilot, lambda: "CRITICAL 3" in screen_text(line))
        assert "trends" not in service.calls[-1:]  # from the list, not a reload of the trends


def _chart_text(app, chart_id: str) -> str:
    chart = app.screen.query_one(chart_id)
    return ANSI.sub("", chart.plt.build())


async def test_with_little_data_the_axes_count_whole_things_from_zero():
    # No payments at all (two snapshots of 0 tx/h) and one event: plotext alone drew −1…1 for
    # the transactions and 0.5-event steps for the events.
    service = FakeMonitorService([e for e in festival_events() if e.severity is Severity.INFO])
    service.snapshots = [_snapshot(5, 0), _snapshot(10, 0)]
    service.counts = [(HOUR, "HIGH", 1)]
    app = make_app(service)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: bool(app.screen.query("#chart-severity")))
        await settle(pilot)
        for chart in ("#chart-transactions", "#chart-severity"):
            text = _chart_text(app, chart)
            assert "-1" not in text and "0.5" not in text, text
            assert re.search(r"^\s*1\s*┤", text, re.MULTILINE), text
            assert re.search(r"^\s*0\s*┤", text, re.MULTILINE), text


async def test_a_sparkline_at_zero_or_of_one_point_is_a_flat_baseline():
    service = FakeMonitorService()
    service.snapshots = [_snapshot(5, 0)]
    app = make_app(service)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        spark = app.screen.query_one("#spark-transactions", Sparkline)
        assert list(spark.data or []) == []
        assert "█" not in screen_text(spark)
        service.snapshots = [_snapshot(5, 0), _snapshot(10, 0), _snapshot(15, 0)]
        app.action_reload_data()
        await settle(pilot)
        assert list(spark.data or []) == []
        service.snapshots = [_snapshot(5, 120), _snapshot(10, 0)]
        app.action_reload_data()
        await settle(pilot)
        assert list(spark.data or []) == [0.0, 120.0]
