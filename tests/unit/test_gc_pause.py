"""Start-up runs without the cyclic garbage collector, and always gives it back."""

from __future__ import annotations

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
    assert cli.main(["--env-file", "/nonexistent", "dashboard", "--monitoring-theme", "x"]) == 2
    assert seen == [False]
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        cli.main(["--no-such-option"])
    assert gc.isenabled()
    capsys.readouterr()
