"""An in-memory MonitorService: events, lifecycle rules and live changes, no database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from festmon_tui.models import (
    Alert,
    BreakerState,
    BreakerStatus,
    CardView,
    Change,
    ChangeKind,
    ConnectionState,
    CycleResult,
    DetectorResult,
    Event,
    EventAction,
    EventDetail,
    EventFilter,
    EventStatus,
    EventType,
    Handover,
    HealthSnapshot,
    HealthStatus,
    JobStatus,
    LeaderInfo,
    LedgerRow,
    MonitorState,
    ScanRow,
    Severity,
    Verb,
)
from festmon_tui.service.api import ActionRefused

NOW = datetime(2025, 7, 12, 21, 30, 0, tzinfo=UTC)

_ALLOWED = {
    Verb.ACKNOWLEDGE: ({EventStatus.OPEN}, EventStatus.INVESTIGATING),
    Verb.UNACKNOWLEDGE: ({EventStatus.INVESTIGATING}, EventStatus.OPEN),
    Verb.RESOLVE: ({EventStatus.OPEN, EventStatus.INVESTIGATING}, EventStatus.RESOLVED),
    Verb.FALSE_POSITIVE: (
        {EventStatus.OPEN, EventStatus.INVESTIGATING},
        EventStatus.FALSE_POSITIVE,
    ),
}


class DatabaseDown(ConnectionError):
    """What the fake raises while `available` is False."""


def healthy_state(now: datetime = NOW, **changes: Any) -> MonitorState:
    state = MonitorState(
        connection=ConnectionState.CONNECTED,
        database_label="db.festival.example/payments",
        environment="production",
        health=HealthSnapshot(
            snapshot_id=42,
            snapshot_timestamp=now - timedelta(minutes=2),
            overall_health_status=HealthStatus.HEALTHY,
            total_transactions_last_hour=1234,
            successful_transactions_last_hour=1229,
            failed_transactions_last_hour=5,
            success_rate_percent=Decimal("99.59"),
            total_nfc_scans_last_hour=2345,
            duplicate_nfc_scans_last_hour=3,
            nfc_success_rate_percent=Decimal("99.91"),
            avg_processing_time_ms=120,
            p95_processing_time_ms=340,
            max_processing_time_ms=910,
            active_cards_count=1980,
            total_system_balance=Decimal("45678.50"),
            monitoring_events_last_hour=4,
            critical_events_last_hour=0,
        ),
        breaker=BreakerStatus(name="detection", state=BreakerState.CLOSED, failure_count=0),
        jobs=(
            JobStatus(
                "critical",
                30_000,
                last_started_at=now - timedelta(seconds=12),
                last_duration_ms=210,
                last_success=True,
                last_result="2 new, 1 updated",
                next_run_at=now + timedelta(seconds=18),
            ),
            JobStatus(
                "medium",
                120_000,
                last_started_at=now - timedelta(seconds=70),
                last_duration_ms=1430,
                last_success=True,
                last_result="0 new",
                next_run_at=now + timedelta(seconds=50),
            ),
            JobStatus(
                "health",
                300_000,
                last_started_at=now - timedelta(minutes=2),
                last_duration_ms=80,
                last_success=True,
                next_run_at=now + timedelta(minutes=3),
            ),
            JobStatus("cleanup", 3_600_000, next_run_at=now + timedelta(minutes=40)),
        ),
        leader=LeaderInfo("h1", "festmon-a", 4242, now - timedelta(hours=2), None, is_self=True),
        refreshed_at=now - timedelta(seconds=3),
        health_status=HealthStatus.HEALTHY,
        active_events=6,
        active_critical_events=0,
        active_high_events=0,
        last_detection_at=now - timedelta(seconds=12),
        started_at=now - timedelta(hours=2),
        scheduler_enabled=True,
        live_updates="listen",
    )
    return replace(state, **changes)


def make_event(event_id: int, **fields: Any) -> Event:
    defaults: dict[str, Any] = {
        "event_type": EventType.TRANSACTION_FAILURE,
        "severity": Severity.MEDIUM,
        "detection_algorithm": "consecutive_failures",
        "status": EventStatus.OPEN,
        "detection_timestamp": NOW - timedelta(minutes=event_id),
        "card_id": f"card-{event_id:05d}",
        "occurrence_count": 1,
    }
    defaults.update(fields)
    defaults.setdefault("last_seen_at", defaults["detection_timestamp"])
    return Event(event_id=event_id, **defaults)


def festival_events() -> list[Event]:
    """A small, varied set: one of each kind of problem, some closed."""
    tx = UUID("00000000-0000-4000-8000-00000000abcd")
    return [
        make_event(
            1,
            event_type=EventType.BALANCE_DISCREPANCY,
            severity=Severity.CRITICAL,
            detection_algorithm="balance_mismatch_detection",
            card_id="card-00001",
            affected_amount=Decimal("12.50"),
            event_data={
                "actual_balance": "40.00",
                "expected_balance": "27.50",
                "discrepancy": "12.50",
                "transaction_count": 4,
            },
            detection_timestamp=NOW - timedelta(minutes=7),
        ),
        make_event(
            2,
            event_type=EventType.TRANSACTION_FAILURE,
            severity=Severity.CRITICAL,
            detection_algorithm="balance_deduction_on_failure",
            card_id="card-00002",
            transaction_id=tx,
            affected_amount=Decimal("8.00"),
            event_data={
                "previous_balance": "20.00",
                "new_balance": "12.00",
                "current_balance": "12.00",
            },
            detection_timestamp=NOW - timedelta(minutes=3),
        ),
        make_event(
            3,
            event_type=EventType.BALANCE_DISCREPANCY,
            severity=Severity.HIGH,
            detection_algorithm="balance_chain_break",
            card_id="card-00003",
            status=EventStatus.INVESTIGATING,
            acknowledged_by="maria@10.0.0.7",
            acknowledged_at=NOW - timedelta(minutes=1),
            event_data={"previous_balance": "5.00", "expected_previous_balance": "9.00"},
            detection_timestamp=NOW - timedelta(minutes=25),
        ),
        make_event(
            4,
            event_type=EventType.DUPLICATE_NFC,
            severity=Severity.MEDIUM,
            detection_algorithm="temporal_duplicate_detection",
            card_id="card-00004",
            occurrence_count=3,
            event_data={"scan_count": 2, "gap_seconds": 1.2, "threshold_seconds": 5},
            detection_timestamp=NOW - timedelta(minutes=40),
        ),
        make_event(
            5,
            event_type=EventType.RACE_CONDITION,
            severity=Severity.MEDIUM,
            detection_algorithm="concurrent_transaction_detection",
            card_id="card-00005",
            event_data={"concurrent_count": 2, "time_span_seconds": 0.8},
            detection_timestamp=NOW - timedelta(hours=2),
        ),
        make_event(
            6,
            event_type=EventType.TRANSACTION_FAILURE,
            severity=Severity.HIGH,
            detection_algorithm="consecutive_failures",
            card_id="card-00006",
            status=EventStatus.RESOLVED,
            resolution_notes="reader at bar 3 replaced",
            detection_timestamp=NOW - timedelta(hours=5),
        ),
        make_event(
            7,
            event_type=EventType.SYSTEM_HEALTH,
            severity=Severity.INFO,
            detection_algorithm="system_initialization",
            card_id=None,
            detection_timestamp=NOW - timedelta(days=2),
        ),
    ]


def _matches(event: Event, f: EventFilter, history: list[str]) -> bool:
    """As the database's search: ids, notes, owner, and the notes and actors of its history."""
    if f.severities and event.severity not in f.severities:
        return False
    if f.event_types and event.event_type not in f.event_types:
        return False
    if f.statuses and event.status not in f.statuses:
        return False
    if f.card_id is not None and event.card_id != f.card_id:
        return False
    if f.since is not None and (event.last_seen_at or event.detection_timestamp) < f.since:
        return False
    if f.search:
        needle = f.search.lower()
        return (
            needle in (event.card_id or "").lower()
            or needle in str(event.transaction_id or "")
            or needle == str(event.event_id)
            or needle in (event.resolution_notes or "").lower()
            or needle in (event.acknowledged_by or "").lower()
            or any(needle in text.lower() for text in history)
        )
    return True


class FakeMonitorService:
    """MonitorService in memory; `available = False` makes every call fail like a lost DB."""

    def __init__(
        self, events: list[Event] | None = None, state: MonitorState | None = None
    ) -> None:
        self.events: dict[int, Event] = {e.event_id: e for e in (events or festival_events())}
        self._state = state or healthy_state()
        self.available = True
        self.actions: list[EventAction] = []
        self.calls: list[str] = []
        self.cycle_gate: asyncio.Event | None = None
        self.cycle_result: CycleResult | None = None
        self.snapshots: list[HealthSnapshot] = []
        self.counts: list[tuple[datetime, str, int]] = []
        self.detail_extra: dict[str, Any] = {}
        # Quitting asks this; by default this process is a follower and quits at once.
        self.handover_answer = Handover(leads=False)
        self._subscribers: list[asyncio.Queue[Change]] = []

    # ---- test controls ---------------------------------------------------------------------

    @property
    def state(self) -> MonitorState:
        return self._state

    def set_state(self, state: MonitorState) -> None:
        self._state = state
        self.publish(Change(ChangeKind.STATE))

    def publish(self, change: Change) -> None:
        for queue in self._subscribers:
            queue.put_nowait(change)

    def insert(self, event: Event) -> None:
        """A new event arrives from detection (another process), with its NOTIFY."""
        self.events[event.event_id] = event
        self.publish(
            Change(
                ChangeKind.EVENT_INSERTED,
                event.event_id,
                str(event.event_type),
                str(event.severity),
                str(event.status),
            )
        )

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if not self.available:
            raise DatabaseDown("connection refused (database unavailable)")

    # ---- MonitorService --------------------------------------------------------------------

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        self._check("list_events")
        history: dict[int, list[str]] = {}
        for action in self.actions:
            actor = action.actor or {}
            texts = [action.note or "", str(actor.get("operator") or ""), str(actor.get("os_user"))]
            history.setdefault(action.event_id, []).extend(texts)
        found = [
            e
            for e in self.events.values()
            if _matches(e, event_filter, history.get(e.event_id, []))
        ]
        found.sort(
            key=lambda e: (e.last_seen_at or e.detection_timestamp, e.event_id), reverse=True
        )
        return found[: event_filter.limit]

    async def event_detail(self, event_id: int) -> EventDetail:
        self._check("event_detail")
        event = self.events[event_id]
        return EventDetail(
            event=event,
            actions=tuple(a for a in self.actions if a.event_id == event_id),
            ledger=self.detail_extra.get("ledger", ()),
            scans=self.detail_extra.get("scans", ()),
            alerts=self.detail_extra.get("alerts", ()),
            current_balance=self.detail_extra.get("current_balance"),
        )

    async def card(self, card_id: str) -> CardView:
        self._check("card")
        events = [e for e in self.events.values() if e.card_id == card_id]
        events.sort(key=lambda e: (e.last_seen_at or e.detection_timestamp, e.event_id))
        return CardView(
            card_id,
            tuple(reversed(events)),
            self.detail_extra.get("ledger", ()),
            self.detail_extra.get("scans", ()),
            self.detail_extra.get("current_balance"),
        )

    async def act(self, event_id: int, verb: Verb, note: str | None = None) -> Event:
        """Like the database: one audited action, one change published, refusals explained."""
        self._check(f"act:{verb}")
        if self._state.viewer:
            raise ActionRefused("viewer mode is read-only: lifecycle actions are disabled")
        event = self.events.get(event_id)
        if event is None:
            raise ActionRefused(f"event {event_id} does not exist")
        note = (note or "").strip() or None
        if verb.needs_note and note is None:
            raise ActionRefused("a note is required")
        before = target = event.status
        if verb is not Verb.NOTE:
            allowed, target = _ALLOWED[verb]
            if event.status not in allowed:
                raise ActionRefused(f"cannot {verb.label} an event that is {event.status}")
            owner = "tester@test-host" if target is EventStatus.INVESTIGATING else None
            event = replace(event, status=target, acknowledged_by=owner, resolution_notes=note)
            self.events[event_id] = event
        self._log(event_id, str(verb), str(before), str(target), note)
        self.publish(Change(ChangeKind.EVENT_UPDATED, event_id, status=str(target)))
        return event

    def _log(
        self, event_id: int, action: str, before: str | None, after: str | None, note: str | None
    ) -> None:
        self.actions.append(
            EventAction(
                action_id=len(self.actions) + 1,
                event_id=event_id,
                action=action,
                from_status=before,
                to_status=after,
                actor={"os_user": "tester", "host": "test-host", "operator": None},
                note=note,
                acted_at=NOW,
            )
        )

    async def run_cycle_now(self) -> CycleResult:
        self._check("run_cycle_now")
        if self.cycle_gate is not None:
            await self.cycle_gate.wait()
        return self.cycle_result or CycleResult(
            cycle_timestamp=NOW,
            cycle_duration_seconds=0.21,
            total_events_created=2,
            success=True,
            health_snapshot_id=43,
            detectors=(
                DetectorResult("transaction_failures", True, events_created=1),
                DetectorResult("balance_discrepancies", True, events_created=1),
                DetectorResult("duplicate_nfc_scans", True),
                DetectorResult("race_conditions", True),
            ),
        )

    async def handover(self) -> Handover:
        self._check("handover")
        return self.handover_answer

    async def health_history(self, since: datetime) -> list[HealthSnapshot]:
        self._check("health_history")
        return [s for s in self.snapshots if s.snapshot_timestamp >= since]

    async def event_counts_by_hour(self, since: datetime) -> list[tuple[datetime, str, int]]:
        self._check("event_counts_by_hour")
        return [row for row in self.counts if row[0] >= since]

    async def changes(self) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)


def ledger_with_break(card: str = "card-00001") -> tuple[LedgerRow, ...]:
    rows = []
    balances = [("standard_recharge", "50.00", "0.00", "50.00", True)]
    balances += [
        ("bar_order", "7.50", "50.00", "42.50", True),
        ("bar_order", "2.50", "42.50", "40.00", True),
    ]
    balances += [
        ("bar_order", "12.50", "40.00", "27.50", True),
        ("bar_order", "3.00", "40.00", "37.00", False),
    ]
    for i, (kind, amount, before, after, ok) in enumerate(balances, start=1):
        rows.append(
            LedgerRow(
                log_id=i,
                transaction_id=UUID(int=i),
                timestamp=NOW - timedelta(minutes=30 - i * 5),
                transaction_type=kind,
                status="completed",
                amount_involved=Decimal(amount),
                previous_balance=Decimal(before),
                new_balance=Decimal(after),
                client_request_id=f"req-{i}",
                chain_ok=ok,
            )
        )
    return tuple(rows)


def scans_for(card: str = "card-00001") -> tuple[ScanRow, ...]:
    return (
        ScanRow(1, NOW - timedelta(minutes=10, seconds=2), "success", 95, "bar-03-reader-1"),
        ScanRow(2, NOW - timedelta(minutes=10), "duplicate", 12, "bar-03-reader-1"),
    )


def alert_for(event_id: int = 1) -> tuple[Alert, ...]:
    return (
        Alert(
            alert_id=9,
            event_id=event_id,
            alert_level="CRITICAL",
            alert_message="Balance mismatch on card card-00001: 12.50",
            alert_timestamp=NOW - timedelta(minutes=7),
            escalation_level=1,
        ),
    )
