"""Find it again: the palette takes typed commands, and the search covers notes and history."""

from __future__ import annotations

import pytest
from textual.command import CommandList, CommandPalette

from festmon_tui.models import EventFilter, EventStatus, EventType, Severity, Verb
from festmon_tui.ui.filters import DEFAULT_FILTER
from festmon_tui.ui.screens.card_view import CardScreen
from festmon_tui.ui.typed_commands import parse
from festmon_tui.ui.view_state import CardChosen, EventChosen, FiltersChanged, LifecycleRequested
from tests.ui.fake_service import FakeMonitorService, healthy_state
from tests.ui.pilot import event_ids, make_app, notifications, settle, until

SIZES = [(80, 24), (120, 40)]


def test_lifecycle_lines_name_the_event_the_verb_and_the_note():
    ack = parse("ack 42", DEFAULT_FILTER)
    assert ack is not None and isinstance(ack.message, LifecycleRequested)
    assert (ack.message.event_id, ack.message.verb, ack.message.note) == (
        42,
        Verb.ACKNOWLEDGE,
        None,
    )
    resolve = parse("resolve #7 reader at bar 3 replaced", DEFAULT_FILTER)
    assert resolve is not None and isinstance(resolve.message, LifecycleRequested)
    assert (resolve.message.verb, resolve.message.note) == (
        Verb.RESOLVE,
        "reader at bar 3 replaced",
    )
    assert resolve.mutating


def test_an_incomplete_line_says_what_is_missing_and_runs_nothing():
    for line, missing in (
        ("resolve 42", "a note is required"),
        ("ack", "which event?"),
        ("ack forty-two", "which event?"),
        ("type spaceship", "which type?"),
        ("card", "which card?"),
        ("sev extreme", "which one?"),
    ):
        typed = parse(line, DEFAULT_FILTER)
        assert typed is not None and typed.message is None and missing in typed.label, line


def test_filters_change_only_what_the_line_names():
    current = EventFilter(statuses=frozenset({EventStatus.OPEN}), search="x")
    race = parse("type race", current)
    assert race is not None and isinstance(race.message, FiltersChanged)
    assert race.message.event_filter == EventFilter(
        statuses=frozenset({EventStatus.OPEN}),
        search="x",
        event_types=frozenset({EventType.RACE_CONDITION}),
    )
    tx = parse("type tx", current)
    assert tx is not None and isinstance(tx.message, FiltersChanged)
    assert tx.message.event_filter.event_types == {EventType.TRANSACTION_FAILURE}
    sev = parse("sev high", current)
    assert sev is not None and isinstance(sev.message, FiltersChanged)
    assert sev.message.event_filter.severities == {Severity.CRITICAL, Severity.HIGH}
    status = parse("status all", current)
    assert status is not None and isinstance(status.message, FiltersChanged)
    assert status.message.event_filter.statuses == frozenset()


def test_card_and_open_lines_and_lines_that_are_no_command():
    card = parse("card 04A1B2", DEFAULT_FILTER)
    assert card is not None and isinstance(card.message, CardChosen)
    assert card.message.card_id == "04A1B2"
    opened = parse("open 3", DEFAULT_FILTER)
    assert opened is not None and isinstance(opened.message, EventChosen)
    assert parse("Theme", DEFAULT_FILTER) is None  # the registry's commands still match


async def _run_typed(pilot, app, line: str) -> None:
    """Type a line into the palette, wait for its hits, run the first."""
    await pilot.press("colon")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*line)
    await until(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
async def test_ack_42_typed_in_the_palette_acknowledges_that_event(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _run_typed(pilot, app, "ack 4")
        await until(pilot, lambda: service.events[4].status is EventStatus.INVESTIGATING)
        assert any("Event #4 acknowledged" in n for n in notifications(app))


@pytest.mark.parametrize("size", SIZES)
async def test_type_race_typed_in_the_palette_filters_the_list(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _run_typed(pilot, app, "type race")
        await until(pilot, lambda: event_ids(app) == [5])


@pytest.mark.parametrize("size", SIZES)
async def test_card_typed_in_the_palette_opens_the_card_view(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _run_typed(pilot, app, "card card-00004")
        await until(pilot, lambda: isinstance(app.screen, CardScreen))
        assert app.screen.card_id == "card-00004"


async def test_a_viewer_cannot_act_through_a_typed_line():
    service = FakeMonitorService(state=healthy_state(viewer=True))
    app = make_app(service, viewer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _run_typed(pilot, app, "ack 4")
        assert service.events[4].status is EventStatus.OPEN
        assert not [c for c in service.calls if c.startswith("act:")]
        assert any("read-only viewer" in n for n in notifications(app))


@pytest.mark.parametrize("size", SIZES)
async def test_the_search_box_finds_an_event_by_a_note_in_its_history(service, size):
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await service.act(4, Verb.NOTE, "holder phoned about a double charge")
        await settle(pilot)
        await pilot.press("slash", *"double charge", "enter")
        await until(pilot, lambda: event_ids(app) == [4])


async def test_a_typed_card_id_is_shown_literally_in_the_palette(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"card [bold red]04A1[/]")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count > 0)
        shown = str(commands.get_option_at_index(0).prompt)
        assert "[bold red]04A1[/]" in shown
