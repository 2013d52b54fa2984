"""Event storms stay readable (issue 17.7): one line per storming rule, the rest of the list as
it was, a CRITICAL of another rule at the top, and nothing dropped from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from festmon_tui.models import EventType, Severity
from festmon_tui.settings import Settings
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.storms import StormBar, StormWatch
from tests.ui.fake_service import NOW, FakeMonitorService, festival_events, make_event
from tests.ui.pilot import make_app, screen_text, settle, table_rows, until
from tests.ui.test_small_screen import _visible

THRESHOLD = 20  # per minute (the default, 200, would make these tests slow for nothing)


def _race(event_id: int, seconds_ago: float) -> object:
    return make_event(
        event_id,
        event_type=EventType.RACE_CONDITION,
        severity=Severity.MEDIUM,
        detection_timestamp=NOW - timedelta(seconds=seconds_ago),
    )


def _storming_service(races: int = 30) -> FakeMonitorService:
    # festival_events() has two CRITICAL events of other rules (tx failure, balance).
    return FakeMonitorService([*festival_events(), *(_race(100 + i, i) for i in range(races))])


def test_a_rule_storms_above_the_threshold_and_calms_at_half_of_it():
    watch = StormWatch(threshold_per_min=200)
    for i in range(200):
        watch.record(i, "race_condition", NOW - timedelta(seconds=i * 0.25))
    assert watch.update(NOW) == []  # 200 a minute is not more than 200
    watch.record(999, "race_condition", NOW)
    (storm,) = watch.update(NOW)
    assert (storm.rule, storm.events, storm.per_min) == ("race", 201, 201)
    watch.record(999, "race_condition", NOW)  # the same event seen again counts once
    watch.record(1000, "race_condition", NOW)
    assert watch.update(NOW)[0].events == 202
    # 30 s later half of them are older than a minute: 120 a minute, above 100, still a storm.
    assert watch.update(NOW + timedelta(seconds=30))[0].per_min > 100
    assert watch.update(NOW + timedelta(seconds=61)) == []


def test_the_threshold_is_a_setting_with_a_default_of_200():
    assert Settings.parse({}).monitoring_storm_threshold_per_min == 200
    settings = Settings.parse({"monitoring_storm_threshold_per_min": "50"})
    assert DashboardConfig.from_settings(settings).storm_threshold_per_min == 50


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_storm_is_one_line_and_a_critical_of_another_rule_stays_on_top(size):
    service = _storming_service()
    app = make_app(service, storm_threshold_per_min=THRESHOLD)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        rows = table_rows(app)
        assert [row[0] for row in rows[:2]] == ["CRITICAL", "CRITICAL"]
        assert "race" not in [row[2] for row in rows]
        bar = screen_text(app.screen.query_one(StormBar))
        assert "STORM race" in bar and "30 events · 30/min" in bar
        header = screen_text(app.screen.query_one(HeaderBar))
        assert "event storm: race" in header
        assert "scheduler: festmon-a/4242" in header  # the leader stays in sight at 80x24
        await pilot.press("w")  # all of the storm's events in the list again
        await settle(pilot)
        assert [row[2] for row in table_rows(app)].count("race") == 1 + 30  # and an older one
        assert len(service.events) == 7 + 30  # nothing was ever dropped


async def test_a_storm_that_arrives_live_folds_the_list_and_ends_when_it_calms():
    service = FakeMonitorService()
    app = make_app(service, storm_threshold_per_min=THRESHOLD)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(StormBar)
        assert not bar.display
        for i in range(THRESHOLD + 5):
            service.insert(_race(200 + i, 0))
        await until(pilot, lambda: bar.display)
        await settle(pilot)
        assert "race" not in [row[2] for row in table_rows(app)]
        assert "25 events" in screen_text(bar)
        # A minute later nothing new: the storm is over and its events are back in the list.
        app.clock = lambda: NOW + timedelta(seconds=61)
        app._tick()
        await settle(pilot)
        assert not bar.display
        assert [row[2] for row in table_rows(app)].count("race") == 1 + 25
        assert "event storm" not in screen_text(app.screen.query_one(HeaderBar))


async def test_two_storms_name_the_busiest_in_the_header_and_keep_the_leader_in_sight():
    duplicates = [
        make_event(
            300 + i,
            event_type=EventType.DUPLICATE_NFC,
            severity=Severity.MEDIUM,
            detection_timestamp=NOW - timedelta(seconds=i),
        )
        for i in range(40)
    ]
    service = _storming_service()
    for event in duplicates:
        service.events[event.event_id] = event
    app = make_app(service, storm_threshold_per_min=THRESHOLD)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = _visible(app, app.screen.query_one(HeaderBar))  # at most 2 lines on screen
        assert "event storm: duplicate NFC +1" in header
        assert "scheduler: festmon-a/4242" in header
        bar = screen_text(app.screen.query_one(StormBar))
        assert "STORM duplicate NFC" in bar and "STORM race" in bar
