"""One card at a time: every event of the card, its ledger and scans, one note for all."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from festmon_tui.models import EventStatus, EventType, Severity
from festmon_tui.ui.screens.card_view import CardScreen
from festmon_tui.ui.screens.dashboard import DashboardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.note_prompt import NotePrompt
from tests.ui.fake_service import (
    NOW,
    FakeMonitorService,
    festival_events,
    ledger_with_break,
    make_event,
    scans_for,
)
from tests.ui.pilot import make_app, notifications, screen_text, settle, until

SIZES = [(80, 24), (120, 40)]
CARD = "card-00002"
TX = UUID("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")


def same_card_service() -> FakeMonitorService:
    """Event 2 (CRITICAL transaction failure) and, far down the list, a balance row and an
    acknowledged race of the same card: what a failed payment that debited the card leaves."""
    events = [
        *festival_events(),
        make_event(
            20,
            event_type=EventType.BALANCE_DISCREPANCY,
            severity=Severity.CRITICAL,
            detection_algorithm="balance_mismatch_detection",
            card_id=CARD,
            detection_timestamp=NOW - timedelta(hours=3),
        ),
        make_event(
            21,
            event_type=EventType.RACE_CONDITION,
            detection_algorithm="concurrent_transaction_detection",
            card_id=CARD,
            status=EventStatus.INVESTIGATING,
            detection_timestamp=NOW - timedelta(hours=4),
        ),
        make_event(22, card_id=CARD, status=EventStatus.RESOLVED, resolution_notes="old"),
    ]
    service = FakeMonitorService(events)
    service.detail_extra = {
        "ledger": ledger_with_break(CARD),
        "scans": scans_for(CARD),
        "current_balance": Decimal("12.00"),
    }
    return service


async def open_card(pilot, app) -> CardScreen:
    await settle(pilot)
    await pilot.press("C")  # event 2 is selected first (CRITICAL, newest)
    await until(pilot, lambda: isinstance(app.screen, CardScreen) and app.screen.record is not None)
    await settle(pilot)
    assert isinstance(app.screen, CardScreen)
    return app.screen


@pytest.mark.parametrize("size", SIZES)
async def test_c_on_an_event_lists_every_event_ledger_row_and_scan_of_its_card(size):
    service = same_card_service()
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        screen = await open_card(pilot, app)
        assert screen.card_id == CARD
        body = screen_text(screen.query_one("#card-body"), width=size[0])
        for event_id in ("2", "20", "21", "22"):
            assert any(line.split()[:1] == [event_id] for line in body.splitlines()), event_id
        assert "Events (4, 3 active)" in body
        assert "BREAKS HERE" in body and "bar-03-reader-1" in body
        assert CARD in screen_text(screen.query_one("#card-title"))
        await pilot.press("q")  # back, as in k9s
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and app.is_running


@pytest.mark.parametrize("size", SIZES)
async def test_the_card_view_opens_from_the_detail_screen_too(size):
    service = same_card_service()
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CardScreen))
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen)


@pytest.mark.parametrize("size", SIZES)
async def test_resolve_all_closes_every_active_event_of_the_card_with_one_note(size):
    service = same_card_service()
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await open_card(pilot, app)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, NotePrompt))
        await pilot.press(*"card refunded at bar 3", "enter")
        await until(pilot, lambda: service.events[21].status is EventStatus.RESOLVED)
        await settle(pilot)
        closed = {2, 20, 21}
        assert all(service.events[i].status is EventStatus.RESOLVED for i in closed)
        audited = [(a.event_id, a.action, a.note) for a in service.actions]
        assert sorted(audited) == [(i, "resolve", "card refunded at bar 3") for i in sorted(closed)]
        assert any(f"Card {CARD}: 3 event(s) resolved." in n for n in notifications(app))
        await until(pilot, lambda: "0 active" in screen_text(app.screen.query_one("#card-body")))


async def test_ack_all_takes_only_the_open_events_of_the_card():
    service = same_card_service()
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_card(pilot, app)
        await pilot.press("a")
        await until(pilot, lambda: len(service.actions) == 2)
        await settle(pilot)
        assert sorted(a.event_id for a in service.actions) == [2, 20]
        assert service.events[21].status is EventStatus.INVESTIGATING  # already acknowledged


async def test_a_viewer_sees_the_card_but_cannot_act_on_it():
    from tests.ui.fake_service import healthy_state

    service = same_card_service()
    service.set_state(healthy_state(viewer=True))
    app = make_app(service, viewer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_card(pilot, app)
        shown = {b.id for (_n, b, enabled, _t) in screen.active_bindings.values() if enabled}
        assert not {"card_ack", "card_resolve", "card_false_positive"} & shown
        await pilot.press("a", "r")
        await settle(pilot)
        assert not service.actions and isinstance(app.screen, CardScreen)


async def test_an_event_without_a_card_says_so():
    service = FakeMonitorService([make_event(7, card_id=None)])
    app = make_app(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert any("concerns no card" in n for n in notifications(app))


@pytest.mark.parametrize("size", SIZES)
async def test_the_detail_shows_the_whole_card_and_transaction_id_wrapped_not_cut(size):
    long_card = "04A1" + "".join(f"{i:02X}" for i in range(60))  # 124 characters
    service = FakeMonitorService([make_event(1, card_id=long_card, transaction_id=TX)])
    app = make_app(service)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        body = app.screen.query_one("#detail-body")
        rendered = screen_text(body, width=body.size.width)
        joined = "".join("".join(line.split()) for line in rendered.splitlines())
        assert f"card{long_card}transaction{TX}" in joined
        assert "…" not in rendered.split("amount")[0]
