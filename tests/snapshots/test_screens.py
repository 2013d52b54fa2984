"""SVG snapshots of the screens a human reviews (--snapshot-update after a reviewed change)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from textual.pilot import Pilot

from festmon_tui.models import (
    BreakerState,
    BreakerStatus,
    ConnectionState,
    EventAction,
    HealthSnapshot,
    HealthStatus,
    Severity,
)
from tests.ui.fake_service import (
    NOW,
    FakeMonitorService,
    alert_for,
    festival_events,
    healthy_state,
    ledger_with_break,
    scans_for,
)
from tests.ui.pilot import make_app, settle

WIDE = (120, 40)


def _history(service: FakeMonitorService) -> FakeMonitorService:
    """A day of snapshots every 10 minutes and hourly event counts, the same on every run."""
    service.snapshots = [
        HealthSnapshot(
            snapshot_id=i,
            snapshot_timestamp=NOW - timedelta(minutes=10 * i),
            overall_health_status=HealthStatus.HEALTHY,
            total_transactions_last_hour=900 + int(400 * math.sin(i / 12) ** 2),
            success_rate_percent=Decimal(f"{99.2 + 0.6 * math.cos(i / 7):.2f}"),
        )
        for i in range(144)
    ]
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    service.counts = [
        (hour - timedelta(hours=h), severity.value, (h * (5 - severity.weight)) % 4)
        for h in range(24)
        for severity in Severity
    ]
    return service


def _quiet_festival() -> FakeMonitorService:
    events = [e for e in festival_events() if e.severity not in (Severity.CRITICAL, Severity.HIGH)]
    service = _history(FakeMonitorService(events))
    service.set_state(healthy_state(active_events=3))
    return service


def _critical_festival() -> FakeMonitorService:
    service = _history(FakeMonitorService())
    service.set_state(
        healthy_state(
            health_status=HealthStatus.CRITICAL,
            health_reasons=("2 active CRITICAL events", "1 active HIGH event"),
            active_events=6,
            active_critical_events=2,
            active_high_events=1,
        )
    )
    return service


async def _settled(pilot: Pilot[Any]) -> None:
    await settle(pilot)


def _after(*keys: str) -> Any:
    """A run_before that presses keys and waits for the work they start (e.g. loading a detail)."""

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run


def test_healthy_dashboard(snap_compare):
    assert snap_compare(make_app(_quiet_festival()), terminal_size=WIDE, run_before=_settled)


def test_critical_dashboard(snap_compare):
    assert snap_compare(make_app(_critical_festival()), terminal_size=WIDE, run_before=_settled)


def test_database_unreachable(snap_compare):
    service = _critical_festival()

    async def lose_the_database(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        service.available = False
        service.set_state(
            replace(
                service.state,
                connection=ConnectionState.UNAVAILABLE,
                last_error="connection refused: is the server running on db.festival.example:5432?",
                refreshed_at=NOW - timedelta(seconds=45),
                breaker=BreakerStatus(
                    "database",
                    BreakerState.OPEN,
                    5,
                    last_error="connection refused",
                    seconds_to_probe=42,
                ),
            )
        )
        await pilot.press("R")
        await settle(pilot)

    assert snap_compare(make_app(service), terminal_size=WIDE, run_before=lose_the_database)


def test_event_detail(snap_compare):
    service = _critical_festival()
    service.detail_extra = {
        "ledger": ledger_with_break(),
        "scans": scans_for(),
        "alerts": alert_for(),
        "current_balance": Decimal("37.00"),
    }
    service.actions.append(
        EventAction(
            1,
            1,
            "acknowledge",
            "OPEN",
            "INVESTIGATING",
            {"os_user": "ops", "operator": "Maria", "ssh_client": "10.0.0.7"},
            "looking at bar 3",
            NOW - timedelta(minutes=1),
        )
    )
    assert snap_compare(make_app(service), terminal_size=WIDE, run_before=_after("down", "enter"))


def test_help_screen(snap_compare):
    app = make_app(_quiet_festival())
    assert snap_compare(app, terminal_size=WIDE, run_before=_after("question_mark"))


def test_compact_80x24(snap_compare):
    assert snap_compare(make_app(_critical_festival()), terminal_size=(80, 24), run_before=_settled)


def test_high_contrast_theme(snap_compare):
    app = make_app(_critical_festival(), theme="festmon-high-contrast")
    assert snap_compare(app, terminal_size=WIDE, run_before=_settled)
