"""Everything that matters at 80x24 (issue 17.2): jobs, leader and breaker, the whole filter
state, notifications that never cover the list, and the sort in sight."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.widgets._toast import Toast

from festmon_tui.models import EventType
from festmon_tui.ui.widgets.breaker_pane import BreakerPane
from festmon_tui.ui.widgets.event_table import EventTable
from festmon_tui.ui.widgets.filter_bar import FilterBar
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.status_line import StatusLine
from tests.ui.fake_service import FakeMonitorService, festival_events, healthy_state
from tests.ui.pilot import make_app, settle, until

SMALL, LARGE = (80, 24), (120, 40)


def _failing_health_job() -> FakeMonitorService:
    state = healthy_state()
    jobs = tuple(
        replace(job, last_success=False, last_result="timeout") if job.name == "health" else job
        for job in state.jobs
    )
    return FakeMonitorService(state=replace(state, jobs=jobs))


def _visible(app, widget) -> str:
    """The widget's text as drawn on screen (only what fits in its region)."""
    region = widget.region
    lines = []
    for y in range(region.y, region.bottom):
        strip = app.screen._compositor.render_strips()[y]
        text = "".join(segment.text for segment in strip)
        lines.append(text[region.x : region.right])
    return "\n".join(lines)


async def test_at_80x24_every_job_breaker_and_leader_are_on_screen_failing_job_first():
    app = make_app(_failing_health_job())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        pane = _visible(app, app.screen.query_one(BreakerPane))
        assert "breaker" in pane and "CLOSED" in pane
        jobs = pane.splitlines()[1]
        assert jobs.startswith(" jobs health FAILED 2m")
        for name in ("critical ok 10s", "medium ok 1m", "cleanup not run"):
            assert name in jobs
        header = _visible(app, app.screen.query_one(HeaderBar))
        assert "scheduler: festmon-a/4242 (this process)" in header


async def test_at_120x40_the_jobs_are_a_table_with_their_results():
    app = make_app(_failing_health_job())
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot)
        pane = _visible(app, app.screen.query_one(BreakerPane))
        assert "job       result  last  next" in pane
        assert "health    FAILED    2m  in 3m" in pane


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_the_filter_line_shows_its_whole_state_at_any_size(size):
    app = make_app(FakeMonitorService())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for _ in range(1 + list(EventType).index(EventType.TRANSACTION_FAILURE)):
            await pilot.press("t")
            await settle(pilot)
        await pilot.press("slash", *"card-0000", "enter")
        await settle(pilot)
        summary = app.screen.query_one(FilterBar).query_one("#filter-summary")
        shown = _visible(app, summary)
        assert "…" not in shown
        assert "tx failure" in shown and '"card-0000"' in shown and "▼" in shown


async def test_at_80x24_a_notification_goes_to_the_status_line_not_over_the_list():
    app = make_app(FakeMonitorService())
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await settle(pilot)
        table = app.screen.query_one(EventTable)
        rows_before = table.region.height
        app.notify("3 event(s) written to /tmp/x.csv", title="Exported")
        status = app.screen.query_one(StatusLine)
        await until(pilot, lambda: status.display)
        assert _visible(app, status).strip() == "Exported: 3 event(s) written to /tmp/x.csv"
        toasts = list(app.screen.query(Toast))
        assert toasts and all(not toast.visible for toast in toasts)
        assert table.region.height == rows_before - 1  # the list makes room; nothing covers it
        assert not table.region.overlaps(status.region)


async def test_at_120x40_a_notification_is_a_toast_and_the_status_line_stays_hidden():
    app = make_app(FakeMonitorService())
    async with app.run_test(size=LARGE, notifications=True) as pilot:
        await settle(pilot)
        app.notify("Theme: festmon-light", title="")
        await until(pilot, lambda: bool(list(app.screen.query(Toast))))
        await pilot.pause()
        assert all(toast.visible for toast in app.screen.query(Toast))
        assert not app.screen.query_one(StatusLine).display


async def test_the_sort_arrow_shows_when_the_sorted_column_is_off_screen():
    long_card = "04A1B2C3D4E5F6A7B8C9D0"  # 22 characters: the list is wider than 80 columns
    events = [replace(e, card_id=long_card) for e in festival_events()]
    app = make_app(FakeMonitorService(events))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        table = app.screen.query_one(EventTable)
        assert table.virtual_size.width > table.size.width
        for _ in range(2):  # severity → age → occurrences (the rightmost column)
            await pilot.press("o")
        await settle(pilot)
        header = _visible(app, table).splitlines()[0]
        assert header.rstrip().endswith("→ occurrences ▼") or header.rstrip().endswith("→ occ ▼")
        await pilot.press("o")  # amount: on screen, no marker
        await settle(pilot)
        assert "→" not in _visible(app, table).splitlines()[0]


async def test_a_long_notification_is_cut_with_an_ellipsis_on_the_status_line():
    app = make_app(FakeMonitorService())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        path = "/tmp/home-operator/exports/" + "festmon-events-2025-07-12T21-30-00" * 2 + ".csv"
        app.notify(f"6 event(s) written to {path}", title="Exported")
        status = app.screen.query_one(StatusLine)
        await until(pilot, lambda: status.display)
        shown = _visible(app, status).rstrip()
        assert shown.startswith(" Exported: 6 event(s) written to /tmp/home-operator/")
        assert shown.endswith("…")


async def test_at_80x24_a_severity_filter_keeps_its_name_on_the_filter_line():
    app = make_app(FakeMonitorService())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("s")  # CRITICAL only
        await settle(pilot)
        shown = _visible(app, app.screen.query_one(FilterBar).query_one("#filter-summary"))
        assert "severity CRITICAL" in shown and "…" not in shown
