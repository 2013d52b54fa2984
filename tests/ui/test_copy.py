"""Copy what you see: y copies the selected event's id, card id or transaction id."""

from __future__ import annotations

from uuid import UUID

import pytest

from festmon_tui.ui.screens.card_view import CardScreen
from festmon_tui.ui.screens.copy_prompt import CopyPrompt
from festmon_tui.ui.screens.dashboard import DashboardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from tests.ui.fake_service import FakeMonitorService, make_event
from tests.ui.pilot import make_app, notifications, screen_text, settle, until

SIZES = [(80, 24), (120, 40)]
TX = UUID("00000000-0000-4000-8000-00000000abcd")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("key", "expected", "said"),
    [
        ("c", "card-00002", "Copied card id card-00002"),
        ("t", str(TX), f"Copied transaction id {TX}"),
        ("e", "2", "Copied event id 2"),
    ],
)
async def test_y_copies_the_chosen_id_of_the_selected_event_and_says_so(
    service, size, key, expected, said
):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyPrompt))
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.clipboard == expected
        assert any(said in n for n in notifications(app))


async def test_nothing_is_copied_until_asked_and_escape_copies_nothing(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.clipboard == ""
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyPrompt))
        await pilot.press("escape")
        await settle(pilot)
        assert app.clipboard == "" and isinstance(app.screen, DashboardScreen)


async def test_the_prompt_offers_only_the_ids_the_event_has():
    service = FakeMonitorService([make_event(5, card_id=None)])
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyPrompt))
        offered = " ".join(screen_text(w) for w in app.screen.query(".copy-choice"))
        assert "event id" in offered and "card id" not in offered
        await pilot.press("c")  # not offered: nothing copied
        await settle(pilot)
        assert app.clipboard == ""


async def test_a_hostile_card_id_is_copied_exactly_and_shown_inert():
    hostile = "[bold red]04A1\x1b]52;c;ZXZpbA==\x07"
    service = FakeMonitorService([make_event(3, card_id=hostile)])
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyPrompt))
        await pilot.press("c")
        await settle(pilot)
        assert app.clipboard == hostile  # the exact value, for the operator's paste
        said = next(n for n in notifications(app) if "Copied card id" in n)
        assert "\x1b" not in said and "\x07" not in said


@pytest.mark.parametrize("size", SIZES)
async def test_y_copies_from_the_detail_and_the_card_view_too(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventDetailScreen))
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyPrompt))
        await pilot.press("e")
        await settle(pilot)
        assert app.clipboard == "2"
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CardScreen))
        await pilot.press("y")
        await settle(pilot)
        assert app.clipboard == "card-00002"
