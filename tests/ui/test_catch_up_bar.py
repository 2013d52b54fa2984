"""A first run catching up on history shows a progress bar (issue 19.3), then none.

The bar sits under the header while any watermark is behind: the slowest one's whole percent
as a bar, the time left, how many rules are behind. It repaints only when the percent (or the
set of rules behind) changes, and disappears when every watermark is caught up.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.geometry import Region

from festmon_tui.models import CatchUp
from festmon_tui.ui.widgets.catch_up_bar import CatchUpBar
from festmon_tui.ui.widgets.event_table import EventTable
from tests.ui.fake_service import FakeMonitorService, healthy_state
from tests.ui.pilot import make_app, settle, until


def progress(ledger: float, rows: int, eta: float | None = 95.0) -> tuple[CatchUp, ...]:
    return (
        CatchUp("balance_chain_break", 0, 100.0, 0, True),
        CatchUp("card_ledger", rows, ledger, eta, False),
        CatchUp("system_failure_spike", 1200, 97.5, 2, False),
    )


def bar_text(bar: CatchUpBar) -> str:
    """The line as it is on screen (the widget's region, cropped like the terminal)."""
    width, height = bar.outer_size
    [line] = [strip.text for strip in bar.render_lines(Region(0, 0, width, height))]
    return line.strip()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_bar_follows_the_percent_and_disappears_when_caught_up(
    size: tuple[int, int],
) -> None:
    service = FakeMonitorService(state=healthy_state(catch_up=progress(42.3, 5_800_000)))
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(CatchUpBar)
        await until(pilot, lambda: bar.display and bar.percent == 42)
        text = bar_text(bar)
        assert text.startswith("catching up ▕")
        assert "▏ 42 % · about 1m left · slowest card" in text
        if size[0] >= 120:
            assert text.endswith("42 % · about 1m left · slowest card_ledger · 2 rules behind")
        else:
            assert text.endswith("…")  # cut, never wrapped onto a second line
        assert len(text) <= size[0] - 2
        # the bar is drawn to scale: 42 % of its cells are full
        cells = text[text.index("▕") + 1 : text.index("▏")]
        assert cells.count("█") == len(cells) * 42 // 100 and cells.count("░") > 0
        # the list is still there, one row shorter
        assert app.screen.query_one(EventTable).display

        # Same whole percent, other rows and seconds: not one line repainted.
        painted = bar.repainted_lines
        service.set_state(healthy_state(catch_up=progress(42.9, 5_700_000, eta=80.0)))
        await until(pilot, lambda: app.monitor_state.catch_up[1].rows_behind == 5_700_000)
        await settle(pilot)
        assert bar.repainted_lines == painted
        assert "about 1m left" in bar_text(bar)

        # The percent moves: one line repainted.
        service.set_state(healthy_state(catch_up=progress(61.0, 3_900_000, eta=30.0)))
        await until(pilot, lambda: bar.percent == 61)
        assert bar.repainted_lines == painted + 1
        assert "61 % · about 30s left · slowest card" in bar_text(bar)

        # Caught up: gone, and the list has its row back.
        done = tuple(replace(p, caught_up=True, rows_behind=0) for p in progress(100, 0))
        service.set_state(healthy_state(catch_up=done))
        await until(pilot, lambda: not bar.display)
        assert bar.percent is None


async def test_no_bar_when_nothing_is_catching_up_or_the_progress_is_unknown() -> None:
    service = FakeMonitorService(state=healthy_state())  # catch_up () : unknown
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(CatchUpBar)
        assert not bar.display
        service.set_state(healthy_state(catch_up=progress(10.0, 100, eta=None)))
        await until(pilot, lambda: bar.display)
        assert "time left not known yet" in bar_text(bar)


async def test_a_rule_still_behind_never_shows_100_percent() -> None:
    """The database rounds 99.96 % to 100.0: while a rule is behind the bar says 99 %."""
    almost = (CatchUp("system_failure_spike", 40, 100.0, None, False),)
    service = FakeMonitorService(state=healthy_state(catch_up=almost))
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.screen.query_one(CatchUpBar)
        await until(pilot, lambda: bar.display)
        assert bar.percent == 99
        assert "99 % · time left not known yet" in bar_text(bar)
