"""Snapshots of issue 17's operator screens at 80x24 and 120x40: a quiet screen's coarse ages,
everything that matters at 80x24, event storms, and trends that follow the list."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from textual.pilot import Pilot

from festmon_tui.models import EventType, Severity
from festmon_tui.ui.widgets.status_line import StatusLine
from tests.ui.fake_service import NOW, FakeMonitorService, festival_events, make_event
from tests.ui.pilot import make_app, settle
from tests.ui.test_small_screen import _failing_health_job
from tests.ui.test_trends_follow import _service_behind_the_list

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


async def _settled(pilot: Pilot[Any]) -> None:
    await settle(pilot)


@SIZES
def test_jobs_notification_and_sort_marker(snap_compare, size):
    """A failing job, a notification and the list sorted by its rightmost column."""
    service = _failing_health_job()
    long_card = "04A1B2C3D4E5F6A7B8C9D0"
    service.events = {
        e.event_id: replace(e, card_id=long_card) if e.card_id else e for e in festival_events()
    }
    app = make_app(service)

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("o", "o")  # sorted by occurrences
        app.notify("6 event(s) written to /tmp/festmon-events.csv", title="Exported")
        await pilot.pause()  # the app takes the notification in
        app.screen.query_one(StatusLine).follow()  # what its next poll would do
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run)


@SIZES
def test_event_storm(snap_compare, size):
    races = [
        make_event(
            100 + i,
            event_type=EventType.RACE_CONDITION,
            severity=Severity.MEDIUM,
            detection_timestamp=NOW - timedelta(seconds=i),
        )
        for i in range(30)
    ]
    app = make_app(FakeMonitorService([*festival_events(), *races]), storm_threshold_per_min=20)
    assert snap_compare(app, terminal_size=size, run_before=_settled)


@SIZES
def test_trends_follow_the_list(snap_compare, size):
    assert snap_compare(
        make_app(_service_behind_the_list()), terminal_size=size, run_before=_settled
    )
