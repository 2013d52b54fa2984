"""Quitting safely: q goes back from a view, the scheduler's process asks first (k9s, htop)."""

from __future__ import annotations

import pytest

from festmon_tui.models import Handover
from festmon_tui.ui.screens.dashboard import DashboardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.help import HelpScreen
from festmon_tui.ui.screens.quit_prompt import QuitPrompt
from tests.ui.pilot import make_app, screen_text, settle, until

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("key", ["q", "escape"])
async def test_q_or_escape_in_the_detail_goes_back_to_the_list(service, size, key):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.is_running


@pytest.mark.parametrize("size", SIZES)
async def test_a_follower_quits_at_once_on_q(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0


@pytest.mark.parametrize("size", SIZES)
async def test_the_leader_asks_and_says_another_festmon_will_take_over(service, size):
    service.handover_answer = Handover(leads=True, standbys=1, takeover_s=5.0)
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt))
        said = screen_text(app.screen.query_one("#quit-consequence"), width=size[0])
        assert "another festmon will take over within 5 s" in said.lower()
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and app.is_running
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0


@pytest.mark.parametrize("size", SIZES)
async def test_the_only_leader_warns_that_detection_stops(service, size):
    service.handover_answer = Handover(leads=True, standbys=0, takeover_s=5.0)
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt))
        said = screen_text(app.screen.query_one("#quit-consequence"), width=size[0]).lower()
        assert "no other festmon is running: detection stops" in said
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running


@pytest.mark.parametrize("size", SIZES)
async def test_ctrl_c_asks_the_same_question_from_a_sub_view_and_twice_quits(service, size):
    service.handover_answer = Handover(leads=True, standbys=0, takeover_s=5.0)
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt))
        assert "detection stops" in screen_text(app.screen.query_one("#quit-consequence"))
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0


async def test_ctrl_c_on_a_follower_quits_at_once(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running)
    assert "handover" in service.calls


async def test_the_database_away_at_quit_time_still_asks_a_leader(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        service.available = False  # handover() fails; the state still says this process leads
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitPrompt))
        said = screen_text(app.screen.query_one("#quit-consequence")).lower()
        assert "cannot tell whether another festmon is running" in said
        await pilot.press("n")
        await settle(pilot)
        assert app.is_running


async def test_q_closes_help_instead_of_quitting(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and app.is_running
