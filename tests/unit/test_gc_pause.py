"""Start-up runs without the cyclic garbage collector, and always gives it back."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

import festmon_tui.cli as cli
from festmon_tui.cli import gc_pause


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_turns_collection_off_inside_and_back_on_after() -> None:
    with gc_pause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resume_turns_it_back_on_early_and_the_end_of_the_pause_keeps_it_on() -> None:
    with gc_pause.paused():
        gc_pause.resume()
        assert gc.isenabled()
        gc_pause.resume()  # idempotent
    assert gc.isenabled()


def test_an_error_inside_still_turns_it_back_on() -> None:
    with pytest.raises(RuntimeError), gc_pause.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    with gc_pause.paused():
        gc_pause.resume()
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_the_cli_parses_and_loads_settings_without_collection_and_gives_it_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []
    load = cli.load_settings

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return load(*args, **kwargs)

    monkeypatch.setattr(cli, "load_settings", recording_load)
    assert cli.main(["--env-file", "/dev/null", "dashboard", "--monitoring-theme", "x"]) == 2
    assert seen == [False]
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        cli.main(["--no-such-option"])
    assert gc.isenabled()
    capsys.readouterr()


def test_the_dashboard_starts_without_collection_and_resumes_it_after_its_first_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contextlib import AsyncExitStack

    from festmon_tui.cli import ui_commands
    from festmon_tui.settings import load_settings
    from festmon_tui.ui.app import FestmonApp
    from tests.ui.fake_service import FakeMonitorService

    seen: dict[str, bool] = {}
    frames: list[bool] = []
    opened = asyncio.Event()

    async def open_service(stack: AsyncExitStack) -> FakeMonitorService:
        seen["opener"] = gc.isenabled()  # runs after the first frame
        opened.set()
        return FakeMonitorService()

    display = FestmonApp._display

    def recording_display(self: FestmonApp, screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(gc.isenabled())
        display(self, screen, renderable)

    async def headless_run(self: FestmonApp, **_: Any) -> int | None:
        # The real run_async needs a terminal; the same app, run by Pilot, headless.
        seen["app start"] = gc.isenabled()
        async with self.run_test(size=(120, 40)) as pilot:
            await asyncio.wait_for(opened.wait(), 10)
            await pilot.press("q")
        return self.return_code

    monkeypatch.setattr(FestmonApp, "run_async", headless_run)
    monkeypatch.setattr(FestmonApp, "_display", recording_display)
    settings = load_settings({}, env_file=None)
    assert ui_commands.run_dashboard(settings, open_service) == 0
    assert seen == {"app start": False, "opener": True}
    assert frames and not frames[0]  # the first frame was rendered without collection
    assert gc.isenabled()
