"""The dashboard paints from a few raw settings, then validates them all (issue 15.1)."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from contextlib import AsyncExitStack
from typing import Any

import pytest

from festmon_tui.cli import ui_commands
from festmon_tui.cli.pending import PendingSettings
from festmon_tui.ui.app import FestmonApp
from tests.ui.fake_service import FakeMonitorService


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("MONITORING_", "PG")) or key in ("DATABASE_URL", "ENVIRONMENT"):
            monkeypatch.delenv(key)


def _run(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str]
) -> tuple[int, list[str], list[Any]]:
    """Run the dashboard headless until it quits by itself (or is quit once the service is
    open): its exit code, the screens it showed, the settings its opener got."""
    frames: list[str] = []
    opened: list[Any] = []
    attached = asyncio.Event()

    async def open_service(stack: AsyncExitStack, settings: Any) -> FakeMonitorService:
        opened.append(settings)
        attached.set()
        return FakeMonitorService()

    display = FestmonApp._display

    def recording_display(self: FestmonApp, screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(type(screen).__name__)
        display(self, screen, renderable)

    async def headless_run(self: FestmonApp, **_: Any) -> int | None:
        async with self.run_test(size=(120, 40)) as pilot:
            waiter = asyncio.ensure_future(attached.wait())
            done, _pending = await asyncio.wait({waiter}, timeout=10)
            if self.is_running and done:
                await pilot.press("q")
            waiter.cancel()
        return self.return_code

    monkeypatch.setattr(FestmonApp, "run_async", headless_run)
    monkeypatch.setattr(FestmonApp, "_display", recording_display)
    code = ui_commands.run_dashboard(PendingSettings(overrides, None), open_service)
    return code, frames, opened


def test_a_bad_setting_found_after_the_first_frame_ends_the_app_with_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, frames, opened = _run(monkeypatch, {"monitoring_statement_timeout_ms": "2147483648"})
    assert code == 2
    assert frames, "the first frame is painted before the settings are validated"
    assert opened == []
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "festmon: invalid setting MONITORING_STATEMENT_TIMEOUT_MS='2147483648': "
    )
    assert "2147483647" in err[0]  # the bound


def test_production_without_a_database_ends_the_dashboard_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _frames, opened = _run(monkeypatch, {"environment": "production"})
    assert (code, opened) == (2, [])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("festmon: no database: set DATABASE_URL")


def test_valid_settings_reach_the_opener_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    code, frames, opened = _run(
        monkeypatch, {"monitoring_batch_size": "42", "monitoring_theme": "nord"}
    )
    assert code == 0 and frames
    assert [settings.monitoring_batch_size for settings in opened] == [42]
    assert opened[0].monitoring_theme == "nord"


def test_a_bad_theme_or_time_zone_is_refused_before_painting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("monitoring_theme", "x"), ("monitoring_timezone", "Mars/Base")):
        code, frames, _opened = _run(monkeypatch, {name: value})
        assert (code, frames) == (2, [])
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"festmon: invalid setting {name.upper()}: ")


def test_a_dashboard_quit_at_once_leaves_no_coroutine_unawaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quitting before the change-following worker starts must not leave its coroutine behind
    (CI printed "coroutine 'ServicePath.follow' was never awaited"): the worker is handed the
    function to call, not a coroutine made in advance."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codes = [_run(monkeypatch, {})[0], _run(monkeypatch, {"environment": "production"})[0]]
        gc.collect()
    assert codes == [0, 2]
    assert not [w for w in caught if "never awaited" in str(w.message)], caught
