"""One command registry behind the keys, the footer, the help screen and the palette."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette
from textual.widgets import Footer

from festmon_tui.models import EventStatus, Verb
from festmon_tui.ui.commands import COMMANDS, KeymapError, parse_keymap
from festmon_tui.ui.screens.help import HelpScreen
from tests.ui.fake_service import FakeMonitorService, healthy_state
from tests.ui.pilot import make_app, notifications, screen_text, settle, until


def test_no_command_needs_ctrl_enter_or_an_f_key():
    for command in COMMANDS:
        assert command.key not in ("ctrl+enter",) and not command.key.startswith("f"), command
        assert len(command.key) == 1 or command.key in ("enter", "escape"), command


def test_the_keymap_setting_remaps_by_command_id():
    assert parse_keymap("ack=k, resolve=z") == {"ack": "k", "resolve": "z"}
    assert parse_keymap("ack=k,ack=K") == {"ack": "k,K"}
    assert parse_keymap("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acknowledge=k", "unknown command 'acknowledge'"),
        ("ack", "is not command=key"),
        ("ack=", "is not command=key"),
        ("ack=r", "key 'r' would run both ack and resolve"),
        ("help=a", "would run both help and ack"),
        ("search=question_mark", "key 'question_mark' would run both help and search"),
    ],
)
def test_a_wrong_keymap_is_refused_with_a_reason(text, message):
    with pytest.raises(KeymapError, match=message):
        parse_keymap(text)


def test_a_key_may_be_reused_by_commands_never_live_together():
    # `j` (raw JSON) lives on the detail screen only, `t` (type filter) on the list only.
    assert parse_keymap("raw=t") == {"raw": "t"}


async def test_question_mark_opens_help_listing_every_command_and_its_key(service):
    app = make_app(service, keymap={"ack": "k"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app.screen.query_one("#help-table"), width=110)
        for command in COMMANDS:
            assert command.title in text and command.id in text
        assert "k  " in text  # the remapped key is shown, not the default
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_remapped_key_runs_its_command_and_the_old_key_does_not(service):
    app = make_app(service, keymap={"ack": "k"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert service.events[2].status is EventStatus.OPEN
        await pilot.press("k")
        await settle(pilot)
        assert service.events[2].status is EventStatus.INVESTIGATING


async def test_the_footer_shows_the_main_keys(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        shown = {
            binding.id
            for (_node, binding, enabled, _tooltip) in app.screen.active_bindings.values()
            if binding.show and enabled
        }
        assert {"help", "cycle", "pause", "quit", "ack", "resolve", "search", "severity"} <= shown
        assert app.screen.query_one(Footer).is_mounted


async def test_colon_opens_the_palette_and_it_runs_registry_commands(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Ack")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert service.events[2].status is EventStatus.INVESTIGATING


async def test_T_switches_between_the_three_festmon_themes(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "festmon-dark"
        await pilot.press("T")
        assert app.theme == "festmon-light"
        await pilot.press("T")
        assert app.theme == "festmon-high-contrast"
        await pilot.press("T")
        assert app.theme == "festmon-dark"


async def test_a_textual_builtin_theme_still_gets_severity_colours(service):
    app = make_app(service, theme="nord")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "nord"
        assert app.theme_variables["sev-critical"]


async def test_the_viewer_hides_and_refuses_every_lifecycle_action():
    service = FakeMonitorService(state=healthy_state(viewer=True))
    app = make_app(service, viewer=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        shown = {b.id for (_n, b, enabled, _t) in app.screen.active_bindings.values() if enabled}
        assert not {"ack", "unack", "resolve", "false_positive", "note", "cycle"} & shown
        await pilot.press("a", "u", "r", "x", "n", "d")
        await settle(pilot)
        assert not {"act:acknowledge", "act:resolve", "run_cycle_now", "act:note"} & set(
            service.calls
        )
        assert app.screen.__class__.__name__ == "DashboardScreen"  # no note prompt opened
        await pilot.press("colon", *"Ack", "enter", "escape")  # the palette offers no Ack
        await settle(pilot)
        statuses = {i: e.status for i, e in service.events.items()}
        await app.run_action("acknowledge_event", app.screen)  # as the palette would
        app.screen.request(Verb.UNACKNOWLEDGE)  # a direct call: the one check is the service's
        await until(pilot, lambda: service.calls.count("act:unacknowledge") == 1)
        await settle(pilot)
        assert {i: e.status for i, e in service.events.items()} == statuses
        assert any("refused" in n and "read-only" in n for n in notifications(app))
