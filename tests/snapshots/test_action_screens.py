"""SVG snapshots of the card view, the quit question and the copy prompt (issue 17.3-17.5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from textual.pilot import Pilot

from festmon_tui.models import Handover
from tests.ui.fake_service import FakeMonitorService, ledger_with_break, scans_for
from tests.ui.pilot import make_app, settle, until

SIZES = [(80, 24), (120, 40)]


def _with_card_context() -> FakeMonitorService:
    service = FakeMonitorService()
    service.detail_extra = {
        "ledger": ledger_with_break("card-00002"),
        "scans": scans_for("card-00002"),
        "current_balance": Decimal("12.00"),
    }
    return service


def _after(*keys: str) -> Any:
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run


@pytest.mark.parametrize("size", SIZES)
def test_card_view(snap_compare, size):
    app = make_app(_with_card_context())
    assert snap_compare(app, terminal_size=size, run_before=_after("C"))


@pytest.mark.parametrize("size", SIZES)
def test_quit_question_of_the_leader(snap_compare, size):
    service = FakeMonitorService()
    service.handover_answer = Handover(leads=True, standbys=1, takeover_s=5.0)
    app = make_app(service)

    async def ask(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: app.screen.__class__.__name__ == "QuitPrompt")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ask)


def test_copy_prompt(snap_compare):
    app = make_app(FakeMonitorService())
    assert snap_compare(app, terminal_size=(80, 24), run_before=_after("y"))
