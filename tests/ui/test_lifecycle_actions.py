"""Acknowledge, unacknowledge, resolve, false positive and notes, from the list and the detail."""

from __future__ import annotations

from festmon_tui.models import EventStatus
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.note_prompt import NotePrompt
from tests.ui.fake_service import make_event
from tests.ui.pilot import (
    event_ids,
    make_app,
    notifications,
    screen_text,
    settle,
    table_rows,
    until,
)


async def test_a_acknowledges_the_selected_event(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert service.events[2].status is EventStatus.INVESTIGATING
        assert service.actions[-1].action == "acknowledge"
        assert any("Event #2 acknowledged" in n for n in notifications(app))
        row = next(row for row in table_rows(app) if row[1] == "2")
        assert row[6] == "INVESTIGATING"


async def test_u_returns_an_acknowledged_event_to_open(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # event 3, INVESTIGATING
        await pilot.press("u")
        await settle(pilot)
        assert service.events[3].status is EventStatus.OPEN


async def test_a_refused_transition_is_reported_and_changes_nothing(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("u")  # event 2 is OPEN: nothing to unacknowledge
        await settle(pilot)
        assert service.events[2].status is EventStatus.OPEN
        assert any("refused" in n and "cannot unacknowledge" in n for n in notifications(app))
        assert app.is_running


async def test_r_asks_for_a_note_and_refuses_an_empty_one(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, NotePrompt)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NotePrompt)  # still asking
        assert app.screen.query_one("#note-dialog").has_class("-refused")
        assert "act:resolve" not in service.calls
        await pilot.press(*"refunded at bar 3", "enter")
        await settle(pilot)
        assert service.events[2].status is EventStatus.RESOLVED
        assert service.events[2].resolution_notes == "refunded at bar 3"
        assert 2 not in event_ids(app)  # closed events leave the active list


async def test_escape_cancels_the_note_prompt_without_acting(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("r", *"half a thought", "escape")
        await settle(pilot)
        assert service.events[2].status is EventStatus.OPEN
        assert "act:resolve" not in service.calls


async def test_x_marks_a_false_positive_with_its_note(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("x", *"test card of the bar staff", "enter")
        await settle(pilot)
        assert service.events[2].status is EventStatus.FALSE_POSITIVE
        assert service.actions[-1].note == "test card of the bar staff"


async def test_n_adds_a_note_without_changing_the_status(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n", *"called the bar manager", "enter")
        await settle(pilot)
        assert service.events[2].status is EventStatus.OPEN
        assert (service.actions[-1].action, service.actions[-1].note) == (
            "note",
            "called the bar manager",
        )


async def test_the_detail_screen_acts_on_its_event_and_shows_the_history(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # event 1
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        await pilot.press("a")
        await settle(pilot)
        title = screen_text(app.screen.query_one("#detail-title"))
        assert "INVESTIGATING" in title
        await pilot.press("r", *"ledger corrected", "enter")
        await settle(pilot)
        body = screen_text(app.screen.query_one("#detail-body"))
        assert service.events[1].status is EventStatus.RESOLVED
        assert "acknowledge" in body and "ledger corrected" in body
        await pilot.press("escape")
        await settle(pilot)
        assert 1 not in event_ids(app)


async def test_the_database_refusing_an_action_never_crashes_the_dashboard(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        service.available = False
        await pilot.press("a")
        await settle(pilot)
        assert app.is_running
        assert any("not acknowledged" in n for n in notifications(app))


async def test_an_action_reloads_the_list_once_from_the_change_it_causes(service):
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        loads = service.calls.count("list_events")
        await pilot.press("a")
        await until(pilot, lambda: service.calls.count("list_events") > loads)
        await settle(pilot)
        service.insert(make_event(99, card_id="card-barrier"))  # a later change, as a barrier
        await until(pilot, lambda: 99 in event_ids(app))
        assert service.calls.count("list_events") == loads + 2
        assert service.calls.count("act:acknowledge") == 1
