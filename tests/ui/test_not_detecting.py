"""Not detecting is loud on the dashboard (issue 13.3): at 80x24 the header's first line says so,
with the cause and the fix, in the alarm colour; the health pane lists it too."""

from __future__ import annotations

from textual.geometry import Region

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import DetectionAlarm, DetectionAlarmKind, HealthStatus
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from festmon_tui.ui.widgets.filter_bar import FilterBar
from festmon_tui.ui.widgets.header_bar import HeaderBar
from festmon_tui.ui.widgets.health_pane import HealthSummary
from tests.ui.fake_service import NOW, FakeMonitorService, healthy_state
from tests.ui.pilot import make_app, screen_text, settle, until

RULE_FAILING = DetectionAlarm(
    DetectionAlarmKind.RULE_FAILING,
    "rule temporal_duplicate_detection failing since 02:14: permission denied for table"
    " nfc_scan_log",
    NOW,
)
NO_SCHEDULER = DetectionAlarm(
    DetectionAlarmKind.NOT_SCHEDULED,
    "no scheduler has run for 3 min — start festmon (the dashboard or festmon run --headless)",
    NOW,
)


def visible_header(header: HeaderBar) -> list[str]:
    """The header's lines as they are on screen (its region, cropped like the terminal)."""
    width, height = header.outer_size
    return [strip.text for strip in header.render_lines(Region(0, 0, width, height))]


async def test_at_80x24_a_failing_rule_is_on_the_first_header_line_in_the_alarm_colour():
    service = FakeMonitorService(
        state=healthy_state(
            detection_alarms=(RULE_FAILING, NO_SCHEDULER),
            health_status=HealthStatus.CRITICAL,
            health_reasons=(RULE_FAILING.message, NO_SCHEDULER.message),
        )
    )
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(HeaderBar)
        lines = visible_header(header)
        assert (
            lines[0]
            .strip()
            .startswith(
                "NOT DETECTING (2)  rule temporal_duplicate_detection failing since 02:14: p"
            )
        )
        assert lines[0].rstrip().endswith("…")  # cut to the width, visibly
        # the alarm line comes on top of the header's own lines; none of them is pushed out
        assert len(lines) == 3 and "festmon" in lines[1] and "scheduler" in lines[2]
        assert header.has_class("-not-detecting")
        assert "CRITICAL" in screen_text(app.screen.query_one(HealthSummary), width=78)


async def test_at_80x24_schema_missing_names_the_fix_and_recovers_when_migrated():
    missing = DetectionAlarm(
        DetectionAlarmKind.SCHEMA_MISSING, "schema missing — run festmon db migrate"
    )
    service = FakeMonitorService(
        state=healthy_state(
            health=None,
            detection_alarms=(missing,),
            health_status=HealthStatus.UNKNOWN,
            health_reasons=(missing.message,),
        )
    )
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(HeaderBar)
        assert visible_header(header)[0].strip() == (
            "NOT DETECTING  schema missing — run festmon db migrate"
        )

        service.set_state(healthy_state())
        await until(pilot, lambda: not header.has_class("-not-detecting"))
        assert "NOT DETECTING" not in "".join(visible_header(header))
        assert "connected" in visible_header(header)[0]


async def test_the_dashboard_on_a_database_without_festmon_schema_is_not_calm(
    empty_db_dsn: str,
) -> None:
    settings = load_settings(
        {"database_url": empty_db_dsn, "monitoring_poll_interval_ms": 200}, env_file=None
    )
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, empty_db_dsn), run_scheduler=False
    )
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            header = app.screen.query_one(HeaderBar)
            await until(pilot, lambda: header.has_class("-not-detecting"), timeout_s=10)
            first = visible_header(header)[0]
            assert "NOT DETECTING" in first and "schema missing — run festmon db migrate" in first
            assert "UNKNOWN" in screen_text(app.screen.query_one(HealthSummary), width=78)
            # The event list cannot load either; it no longer blames an unreachable database.
            summary = app.screen.query_one(FilterBar).query_one("#filter-summary")
            await until(pilot, lambda: "NOT REFRESHED" in screen_text(summary), timeout_s=10)
            assert "unavailable" not in screen_text(summary, width=200)
    finally:
        await service.stop()
