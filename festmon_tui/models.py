"""Frozen dataclasses and enums shared by every layer; no I/O here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID


class Severity(StrEnum):
    """Event severity, as the original's CHECK list."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFO = "INFO"

    @property
    def weight(self) -> int:
        """Sort weight of the original UI: CRITICAL 5 … INFO 1."""
        return _SEVERITY_WEIGHT[self]


_SEVERITY_WEIGHT = {
    Severity.CRITICAL: 5,
    Severity.HIGH: 4,
    Severity.MEDIUM: 3,
    Severity.LOW: 2,
    Severity.INFO: 1,
}


class EventType(StrEnum):
    """What kind of problem an event reports."""

    TRANSACTION_FAILURE = "transaction_failure"
    BALANCE_DISCREPANCY = "balance_discrepancy"
    DUPLICATE_NFC = "duplicate_nfc"
    RACE_CONDITION = "race_condition"
    SYSTEM_HEALTH = "system_health"


class EventStatus(StrEnum):
    """Lifecycle of an event: OPEN → INVESTIGATING → RESOLVED | FALSE_POSITIVE."""

    OPEN = "OPEN"
    INVESTIGATING = "INVESTIGATING"
    RESOLVED = "RESOLVED"
    FALSE_POSITIVE = "FALSE_POSITIVE"

    @property
    def is_active(self) -> bool:
        return self in (EventStatus.OPEN, EventStatus.INVESTIGATING)


class Verb(StrEnum):
    """A lifecycle action on one event; the value is its name in the action log and the CLI."""

    ACKNOWLEDGE = "acknowledge"
    UNACKNOWLEDGE = "unacknowledge"
    RESOLVE = "resolve"
    FALSE_POSITIVE = "false_positive"
    NOTE = "note"

    @property
    def needs_note(self) -> bool:
        return self in (Verb.RESOLVE, Verb.FALSE_POSITIVE, Verb.NOTE)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def done(self) -> str:
        return {
            Verb.ACKNOWLEDGE: "acknowledged",
            Verb.UNACKNOWLEDGE: "unacknowledged",
            Verb.RESOLVE: "resolved",
            Verb.FALSE_POSITIVE: "marked false positive",
            Verb.NOTE: "noted",
        }[self]


class HealthStatus(StrEnum):
    """Overall health of the payment system."""

    HEALTHY = "HEALTHY"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        """Nagios-style exit code of `festmon health`."""
        return _HEALTH_EXIT[self]


_HEALTH_EXIT = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.WARNING: 1,
    HealthStatus.CRITICAL: 2,
    HealthStatus.UNKNOWN: 3,
}


class BreakerState(StrEnum):
    """Circuit breaker state."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True)
class Actor:
    """Who did an action: OS user, SSH client address, host, tty and optional operator name."""

    os_user: str
    host: str
    ssh_client: str | None = None
    tty: str | None = None
    operator: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "os_user": self.os_user,
            "host": self.host,
            "ssh_client": self.ssh_client,
            "tty": self.tty,
            "operator": self.operator,
        }

    @property
    def label(self) -> str:
        who = self.operator or self.os_user
        return f"{who}@{self.ssh_client}" if self.ssh_client else f"{who}@{self.host}"


@dataclass(frozen=True)
class Event:
    """One monitoring event (a row of monitoring_events)."""

    event_id: int
    event_type: EventType
    severity: Severity
    detection_algorithm: str
    status: EventStatus
    detection_timestamp: datetime
    card_id: str | None = None
    transaction_id: UUID | None = None
    affected_amount: Decimal | None = None
    confidence_score: Decimal | None = None
    event_data: dict[str, Any] = field(default_factory=dict)
    context_data: dict[str, Any] = field(default_factory=dict)
    occurrence_count: int = 1
    last_seen_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution_notes: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class EventAction:
    """One row of the append-only action log of an event."""

    action_id: int
    event_id: int
    action: str
    from_status: str | None
    to_status: str | None
    actor: dict[str, Any]
    note: str | None
    acted_at: datetime


@dataclass(frozen=True)
class EventFilter:
    """What the operator asked to see; the same filters in the TUI and `festmon events`."""

    severities: frozenset[Severity] = frozenset()
    event_types: frozenset[EventType] = frozenset()
    statuses: frozenset[EventStatus] = frozenset()
    search: str | None = None
    card_id: str | None = None
    since: datetime | None = None
    limit: int = 1000


@dataclass(frozen=True)
class HealthSnapshot:
    """One row of system_health_snapshots."""

    snapshot_id: int
    snapshot_timestamp: datetime
    overall_health_status: HealthStatus
    total_transactions_last_hour: int = 0
    successful_transactions_last_hour: int = 0
    failed_transactions_last_hour: int = 0
    success_rate_percent: Decimal | None = None
    total_nfc_scans_last_hour: int = 0
    duplicate_nfc_scans_last_hour: int = 0
    nfc_success_rate_percent: Decimal | None = None
    avg_processing_time_ms: int | None = None
    p95_processing_time_ms: int | None = None
    max_processing_time_ms: int | None = None
    active_cards_count: int | None = None
    total_system_balance: Decimal | None = None
    monitoring_events_last_hour: int = 0
    critical_events_last_hour: int = 0
    metrics_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerRow:
    """One app_transaction_log row of a card, with whether its balance chain holds."""

    log_id: int
    transaction_id: UUID | None
    timestamp: datetime
    transaction_type: str
    status: str
    amount_involved: Decimal | None
    previous_balance: Decimal | None
    new_balance: Decimal | None
    client_request_id: str | None
    chain_ok: bool | None = None


@dataclass(frozen=True)
class ScanRow:
    """One nfc_scan_log row of a card."""

    scan_log_id: int
    scan_timestamp: datetime
    scan_status: str
    processing_duration_ms: int | None
    device_identifier: str | None


@dataclass(frozen=True)
class Alert:
    """One alert_history row."""

    alert_id: int
    event_id: int | None
    alert_level: str
    alert_message: str
    alert_timestamp: datetime
    escalation_level: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


@dataclass(frozen=True)
class EventDetail:
    """Everything the detail screen shows about one event."""

    event: Event
    actions: tuple[EventAction, ...] = ()
    ledger: tuple[LedgerRow, ...] = ()
    scans: tuple[ScanRow, ...] = ()
    alerts: tuple[Alert, ...] = ()
    current_balance: Decimal | None = None


@dataclass(frozen=True)
class CardView:
    """One card: every event about it (newest first), its ledger (oldest first), its scans."""

    card_id: str
    events: tuple[Event, ...] = ()
    ledger: tuple[LedgerRow, ...] = ()
    scans: tuple[ScanRow, ...] = ()
    current_balance: Decimal | None = None
    more_events: bool = False


@dataclass(frozen=True)
class DetectorResult:
    """One detector's part of a cycle: counts per algorithm, or the error that stopped it."""

    name: str
    success: bool
    events_created: int = 0
    events_updated: int = 0
    per_algorithm: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class CycleResult:
    """The result of one detection cycle (SPEC §6.4), plus the raw document."""

    cycle_timestamp: datetime
    cycle_duration_seconds: float
    total_events_created: int
    success: bool
    health_snapshot_id: int | None
    detectors: tuple[DetectorResult, ...] = ()
    document: dict[str, Any] = field(default_factory=dict)
    run_by: str | None = None


@dataclass(frozen=True)
class BreakerStatus:
    """What the UI and the status document show of a circuit breaker."""

    name: str
    state: BreakerState
    failure_count: int
    last_error: str | None = None
    opened_at: datetime | None = None
    seconds_to_probe: float | None = None
    half_open_calls: int = 0


@dataclass(frozen=True)
class JobStatus:
    """One scheduled job: last run, its outcome, and the next run."""

    name: str
    interval_ms: int
    running: bool = False
    last_started_at: datetime | None = None
    last_duration_ms: int | None = None
    last_success: bool | None = None
    last_result: str | None = None
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class LeaderInfo:
    """Who runs the scheduled jobs on this database."""

    holder_id: str | None
    host: str | None
    pid: int | None
    since: datetime | None
    expires_at: datetime | None
    is_self: bool = False
    term: int | None = None

    @property
    def label(self) -> str:
        if self.holder_id is None:
            return "no leader"
        return f"{self.host}/{self.pid}" + (" (this process)" if self.is_self else "")


class DetectionAlarmKind(StrEnum):
    """Why festmon is not detecting although it may look connected (issue 13.3)."""

    SCHEMA_MISSING = "SCHEMA_MISSING"  # festmon's schema is not installed (or not up to date)
    RULE_FAILING = "RULE_FAILING"  # a rule failed on its latest runs
    NOT_SCHEDULED = "NOT_SCHEDULED"  # no scheduler has run detection for several intervals


@dataclass(frozen=True)
class DetectionAlarm:
    """One reason detection is not happening: its cause and its fix, in one line."""

    kind: DetectionAlarmKind
    message: str
    since: datetime | None = None


@dataclass(frozen=True)
class RuleFailure:
    """A rule whose latest runs failed (monitoring_rule_failures)."""

    algorithm: str
    failing_since: datetime
    last_failed_at: datetime
    consecutive_failures: int
    error: str | None = None


@dataclass(frozen=True)
class Handover:
    """What quitting this process means for detection: who would take over, and how soon."""

    leads: bool
    standbys: int | None = None  # other schedulers waiting for the lease; None when unknown
    takeover_s: float = 0.0  # a standby asks for the lease this often

    @property
    def consequence(self) -> str:
        if not self.leads:
            return "this festmon does not run the scheduler: detection goes on"
        if self.standbys is None:
            return "cannot tell whether another festmon is running: detection may stop"
        if self.standbys == 0:
            return "no other festmon is running: detection stops"
        return f"another festmon will take over within {math.ceil(self.takeover_s)} s"


class ConnectionState(StrEnum):
    """Whether festmon can talk to its database right now."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class ReplicaStatus:
    """Where the reads go when festmon reads a hot standby, and how far behind the standby is.

    Set only when reads go to a standby (MONITORING_READ_URL, or DATABASE_URL naming a standby).
    """

    # "standby", or "primary" while the standby is away (the reads fell back to the primary).
    reads_from: str
    # The standby's replay lag in whole seconds: the age of the data it serves (None: unknown).
    lag_s: int | None = None
    # Why the reads fell back to the primary (None while the standby answers).
    standby_error: str | None = None
    # Why lifecycle actions and manual cycles are unavailable (the primary is away, or there is
    # no primary: DATABASE_URL names the standby); None when they go to the primary.
    actions_unavailable: str | None = None
    # Events acted on through the primary that the standby has not replayed yet.
    pending_replication: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CatchUp:
    """How far one detection watermark (an incremental rule, or the card ledger) is behind."""

    detector: str
    rows_behind: int
    percent_done: float
    eta_seconds: float | None
    caught_up: bool


@dataclass(frozen=True)
class MonitorState:
    """The latest known state of everything the dashboard shows, with its age."""

    connection: ConnectionState
    database_label: str
    environment: str
    health: HealthSnapshot | None = None
    health_reasons: tuple[str, ...] = ()
    breaker: BreakerStatus | None = None
    jobs: tuple[JobStatus, ...] = ()
    leader: LeaderInfo | None = None
    last_cycle: CycleResult | None = None
    refreshed_at: datetime | None = None
    last_error: str | None = None
    viewer: bool = False
    # Added by the scheduler runtime (issue 4).
    health_status: HealthStatus = HealthStatus.UNKNOWN
    active_events: int | None = None
    active_critical_events: int | None = None
    active_high_events: int | None = None
    last_detection_at: datetime | None = None
    started_at: datetime | None = None
    scheduler_enabled: bool = False
    live_updates: str | None = None
    # Not detecting although connected (issue 13.3); empty while detection works.
    detection_alarms: tuple[DetectionAlarm, ...] = ()
    # Reads on a hot standby (issue 18): its lag, fallbacks and pending actions; None otherwise.
    replica: ReplicaStatus | None = None
    # A first run catching up on history (issue 19.3): every watermark; empty when unknown.
    catch_up: tuple[CatchUp, ...] = ()


class ChangeKind(StrEnum):
    """What a live update says happened."""

    EVENT_INSERTED = "EVENT_INSERTED"
    EVENT_UPDATED = "EVENT_UPDATED"
    STATE = "STATE"  # anything may have changed (a reconnect, a dropped backlog): reload all
    MONITOR = "MONITOR"  # the monitor's own state moved (health, jobs, leader, connection)


@dataclass(frozen=True)
class Change:
    """One live update delivered to subscribers (from LISTEN/NOTIFY or polling)."""

    kind: ChangeKind
    event_id: int | None = None
    event_type: str | None = None
    severity: str | None = None
    status: str | None = None
