"""Counts and ages read as English: "1 event", never "1 events"; "no data yet", never
"data no data yet old" (issue 13.6)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC
from zoneinfo import ZoneInfo

from festmon_tui.cli.event_output import render_table
from festmon_tui.models import ConnectionState
from festmon_tui.ui.filters import SortOrder
from festmon_tui.ui.view_state import EventWindow
from festmon_tui.ui.widgets.filter_bar import summary
from festmon_tui.ui.widgets.header_bar import HeaderBar
from tests.ui.fake_service import NOW, FakeMonitorService, make_event
from tests.ui.pilot import make_app, settle


def test_one_event_is_one_event_in_the_cli_table_and_the_filter_line() -> None:
    event = make_event(1)
    assert render_table([event], ZoneInfo("UTC")).endswith("\n1 event")
    assert render_table([event, make_event(2)], ZoneInfo("UTC")).endswith("\n2 events")
    order = SortOrder()
    one = summary(EventWindow(events=(event,)), order, 1, UTC, NOW).plain
    assert one.startswith("1 event ·")
    assert summary(EventWindow(), order, 0, UTC, NOW).plain.startswith("0 events ·")
    assert summary(EventWindow(more=True), order, 1, UTC, NOW).plain.startswith("1+ events ·")


async def test_the_header_says_no_data_yet_before_the_first_refresh() -> None:
    service = FakeMonitorService()
    app = make_app(service)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(HeaderBar)
        for connection in (ConnectionState.CONNECTED, ConnectionState.UNAVAILABLE):
            header.state = replace(service.state, refreshed_at=None, connection=connection)
            await pilot.pause()
            text = " ".join(s.plain for s in header.segments())
            assert "no data yet" in text and "no data yet old" not in text, text
        header.state = replace(service.state, connection=ConnectionState.CONNECTED)
        await pilot.pause()
        shown = " ".join(s.plain for s in header.segments())
        assert re.search(r"data \S+ old", shown) and "no data yet" not in shown, shown
