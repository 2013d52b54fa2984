"""Run a cycle, pause, new CRITICAL announcements, export, trends range."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

from festmon_tui.models import CycleResult, DetectorResult, EventStatus, EventType, Severity
from festmon_tui.ui.view_state import CyclePhase, TrendRange
from festmon_tui.ui.widgets.breaker_pane import BreakerPane
from festmon_tui.ui.widgets.header_bar import HeaderBar
from tests.ui.fake_service import NOW, make_event
from tests.ui.pilot import event_ids, make_app, notifications, screen_text, settle, until


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def test_d_runs_a_cycle_and_shows_progress_then_the_result_in_place(service):
    service.cycle_gate = asyncio.Event()
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await until(pilot, lambda: app.cycle.phase is CyclePhase.RUNNING)
        pane = app.screen.query_one(BreakerPane)
        assert "cycle now running…" in screen_text(pane)
        await pilot.press("d")  # a second request while one runs is refused, not queued
        await pilot.pause()
        assert any("already running" in n for n in notifications(app))
        service.cycle_gate.set()
        await settle(pilot)
        assert app.cycle.phase is CyclePhase.DONE
        text = screen_text(pane)
        assert "ok: 2 new in 0.21 s (transaction_failures 1, balance_discrepancies 1" in text
        assert service.calls.count("run_cycle_now") == 1


async def test_a_cycle_with_a_failed_detector_says_which_one(service):
    service.cycle_result = CycleResult(
        NOW,
        0.5,
        0,
        False,
        None,
        (DetectorResult("race_conditions", False, error="statement timeout"),),
    )
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        text = screen_text(app.screen.query_one(BreakerPane))
        assert "with errors: 0 new" in text and "race_conditions FAILED" in text


async def test_p_freezes_the_display_and_counts_what_arrives_meanwhile(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        assert app.paused
        service.insert(make_event(60, severity=Severity.LOW))
        service.insert(make_event(61, severity=Severity.LOW))
        await until(pilot, lambda: app.missed == 2)
        header = screen_text(app.screen.query_one(HeaderBar))
        assert "PAUSED — 2 new" in header
        assert 60 not in event_ids(app)  # frozen
        await pilot.press("p")
        await settle(pilot)
        assert not app.paused and app.missed == 0
        assert {60, 61} <= set(event_ids(app))
        assert "PAUSED" not in screen_text(app.screen.query_one(HeaderBar))


async def test_a_new_critical_event_is_announced_once_with_the_bell_when_asked(service):
    app = make_app(service, bell=True)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not any("CRITICAL" in n for n in notifications(app))  # old ones are not news
        new = make_event(
            70,
            severity=Severity.CRITICAL,
            event_type=EventType.BALANCE_DISCREPANCY,
            detection_timestamp=NOW,
        )
        service.insert(new)
        await until(pilot, lambda: any("#70" in n for n in notifications(app)))
        service.insert(new)  # the same event again (a repeat notification)
        await pilot.press("R")  # and a full reload
        await until(pilot, lambda: not app.news.waiting)
        announced = [n for n in notifications(app) if "CRITICAL event" in n]
        assert announced == [
            "New CRITICAL event: #70 balance — in the list (s shows CRITICAL only)"
        ]
        assert bells == [1]


async def test_a_burst_of_critical_events_is_one_notification(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for event_id in (72, 73, 74):
            service.insert(
                make_event(event_id, severity=Severity.CRITICAL, detection_timestamp=NOW)
            )
        await until(pilot, lambda: any("CRITICAL" in n for n in notifications(app)))
        (burst,) = [n for n in notifications(app) if "CRITICAL" in n]
        assert burst.startswith("3 new CRITICAL events: #72 tx failure, #73 tx failure, #74")


async def test_critical_announcements_never_stack_over_the_list(service):
    # One new CRITICAL event a second would otherwise stack a 15 s toast per event over the
    # right half of the screen, the list's header included: later news joins the toast shown.
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for event_id in (80, 81, 82):
            service.insert(
                make_event(event_id, severity=Severity.CRITICAL, detection_timestamp=NOW)
            )
            await until(pilot, lambda e=event_id: any(f"#{e}" in n for n in notifications(app)))
        shown = [n for n in notifications(app) if "CRITICAL" in n]
        assert shown == [
            "3 new CRITICAL events: #80 tx failure, #81 tx failure, #82 tx failure"
            " — in the list (s shows CRITICAL only)"
        ]


async def test_a_new_critical_event_is_announced_even_while_paused(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        service.insert(make_event(71, severity=Severity.CRITICAL, detection_timestamp=NOW))
        await until(pilot, lambda: any("#71" in n for n in notifications(app)))


async def test_e_and_E_export_the_filtered_events_to_csv_and_json(service, tmp_path: Path):
    app = make_app(service, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")  # CRITICAL only
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("E")
        await settle(pilot)
        (csv_file,), (json_file,) = _files(tmp_path, "*.csv"), _files(tmp_path, "*.json")
        rows = list(csv.DictReader(_text(csv_file).splitlines()))
        assert sorted(r["event_id"] for r in rows) == ["1", "2"]
        assert {e["severity"] for e in json.loads(_text(json_file))} == {"CRITICAL"}
        assert any(str(csv_file) in n for n in notifications(app))


async def test_export_includes_every_matching_event_not_only_the_loaded_window(tmp_path: Path):
    from tests.ui.fake_service import FakeMonitorService

    events = [make_event(i, status=EventStatus.OPEN) for i in range(1, 31)]
    app = make_app(FakeMonitorService(events), window=10, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("E")
        await settle(pilot)
        (exported,) = _files(tmp_path, "*.json")
        assert len(json.loads(_text(exported))) == 30


async def test_g_steps_the_trend_range_and_reloads_the_charts(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.trends is not None and app.trends.range is TrendRange.DAY
        await pilot.press("g")
        await settle(pilot)
        assert app.trends.range is TrendRange.WEEK
        assert "trends 7d" in screen_text(app.screen.query_one("#trends-line"))
        await pilot.press("g")
        await settle(pilot)
        assert app.trends.range is TrendRange.HOUR


async def test_q_quits(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
