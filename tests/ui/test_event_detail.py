"""The event detail: evidence in sentences per rule, the ledger's balance chain, scans, alerts."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest

from festmon_tui.models import Severity
from festmon_tui.ui.evidence import explain
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from tests.ui.fake_service import (
    FakeMonitorService,
    alert_for,
    festival_events,
    ledger_with_break,
    make_event,
    scans_for,
)
from tests.ui.pilot import make_app, screen_text, settle


@pytest.mark.parametrize(
    ("algorithm", "data", "expected"),
    [
        (
            "balance_deduction_on_failure",
            {"previous_balance": "20.00", "new_balance": "12.00", "current_balance": "12.00"},
            "A FAILED transaction still changed the card's balance: 20.00 → 12.00 (-8.00).",
        ),
        (
            "consecutive_failures",
            {"failure_count": 4, "time_span_minutes": 6, "failed_transactions": ["a", "b"]},
            "4 failed transactions on this card within 6 minutes.",
        ),
        (
            "system_failure_spike",
            {
                "total_transactions": 40,
                "failed_transactions": 5,
                "failure_rate_percent": 12.5,
                "threshold_percent": 5,
                "time_window_minutes": 15,
            },
            "5 of 40 transactions failed in the last 15 minutes: 12.5 % (threshold 5 %).",
        ),
        (
            "balance_mismatch_detection",
            {"actual_balance": "40.00", "expected_balance": "27.50", "discrepancy": "12.50"},
            "The card holds 40.00 but its ledger implies 27.50: +12.50 that no transaction"
            " explains.",
        ),
        (
            "balance_chain_break",
            {"previous_balance": "5.00", "expected_previous_balance": "9.00"},
            "A completed transaction started from 5.00, but the card's previous completed "
            "transaction had left 9.00.",
        ),
        (
            "negative_balance_detection",
            {"negative_balance": "-3.50"},
            "The card's balance is -3.50, below zero.",
        ),
        (
            "temporal_duplicate_detection",
            {"scan_count": 2, "gap_seconds": 1.2, "threshold_seconds": 5},
            "The card was scanned 2 times 1.2 s apart (threshold 5 s).",
        ),
        (
            "concurrent_transaction_detection",
            {"concurrent_count": 2, "time_span_seconds": 0.8},
            "2 transactions on this card 0.8 s apart (not retries of one request).",
        ),
        ("a_rule_from_the_future", {}, "Reported by rule a_rule_from_the_future"),
    ],
)
def test_every_rule_explains_its_evidence_in_a_sentence(algorithm, data, expected):
    event = make_event(1, detection_algorithm=algorithm, event_data=data)
    assert expected in " ".join(line.plain for line in explain(event, UTC))


def test_evidence_of_an_unexpected_shape_does_not_break_the_explanation():
    event = make_event(1, detection_algorithm="balance_mismatch_detection", event_data={"x": 1})
    text = " ".join(line.plain for line in explain(event, UTC))
    assert "The card holds — but its ledger implies —" in text


async def test_enter_opens_the_event_with_its_ledger_chain_scans_alert_and_raw_json():
    service = FakeMonitorService(festival_events())
    service.detail_extra = {
        "ledger": ledger_with_break(),
        "scans": scans_for(),
        "alerts": alert_for(),
        "current_balance": Decimal("37.00"),
    }
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, EventDetailScreen) and app.screen.event_id == 1
        title = screen_text(app.screen.query_one("#detail-title"))
        assert "Event #1" in title and "CRITICAL" in title and "OPEN" in title
        body = screen_text(app.screen.query_one("#detail-body"))
        assert "Why this is a problem" in body
        assert "its ledger implies 27.50" in body
        assert "BREAKS HERE" in body  # where the balance chain breaks
        assert "duplicate" in body and "bar-03-reader-1" in body  # NFC scans
        assert "escalation level 1" in body and "not acknowledged" in body  # alert
        assert "Nobody has acted on this event yet." in body
        assert "event_data (raw)" not in body
        await pilot.press("j")
        await pilot.pause()
        assert '"actual_balance": "40.00"' in screen_text(app.screen.query_one("#detail-body"))
        await pilot.press("escape")
        assert not isinstance(app.screen, EventDetailScreen)


async def test_an_event_without_a_card_says_it_concerns_the_whole_system():
    event = make_event(
        5, card_id=None, severity=Severity.MEDIUM, detection_algorithm="system_failure_spike"
    )
    app = make_app(FakeMonitorService([event]))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert "this event concerns the whole system" in screen_text(
            app.screen.query_one("#detail-body")
        )
