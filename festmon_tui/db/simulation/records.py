"""What the simulator asks the database to write, and what it reads back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any
from uuid import UUID

import asyncpg

from festmon_tui.db.errors import DatabaseRefused

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class SimulationRefused(DatabaseRefused):
    """The database is not one the simulator may write to (no reference payment schema)."""


@dataclass(frozen=True)
class Scan:
    """One NFC scan as the reader logs it.

    `offset_s`: for a payment's extra reads, seconds relative to the tap (negative: before it);
    once shaped for the INSERT, seconds before the write.
    """

    card_id: str | None
    device: str
    location: str
    raw_data: str
    status: str = "success"
    offset_s: float = 0.0
    processing_ms: int | None = None
    operation_id: str | None = None
    client_request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    user_agent: str = "festival-pos/3.4 (android 13)"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BarOrder:
    """A bar order as the till sends it to sp_process_bar_order."""

    card_id: str
    items: tuple[dict[str, Any], ...]
    total: Decimal
    client_request_id: str
    point_of_sale: int


@dataclass(frozen=True)
class Recharge:
    """A top-up as sp_process_recharge takes it (stripe, checkpoint or standard)."""

    card_id: str
    amount: Decimal
    recharge_type: str
    client_request_id: str | None
    payment_method: str
    staff_id: str | None = None
    checkpoint_id: str | None = None
    stripe_session_id: str | None = None


@dataclass(frozen=True)
class Truth:
    """A ground-truth row, written in the same transaction as the anomaly's last write."""

    run_id: int
    kind: str
    rule: str
    expected_rules: tuple[str, ...]
    card_id: str | None
    started_at: datetime | None = None
    transaction_ids: tuple[UUID, ...] = ()
    scan_log_ids: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What a write produced: log transaction ids, scan ids, balances and the database time."""

    at: datetime
    transaction_ids: tuple[UUID, ...] = ()
    scan_log_ids: tuple[int, ...] = ()
    success: bool = True
    error_code: str | None = None
    previous_balance: Decimal | None = None
    new_balance: Decimal | None = None
    duration_ms: int = 0
    anomaly_id: int | None = None


@dataclass
class HistoryBatch:
    """Earlier festival activity written in bulk with its own timestamps (the day so far)."""

    cards: list[tuple[str, Decimal, datetime]] = field(default_factory=list)
    entries: list[HistoryEntry] = field(default_factory=list)
    scans: list[tuple[datetime, Scan]] = field(default_factory=list)


@dataclass(frozen=True)
class HistoryEntry:
    """One completed payment of the festival's history, as the procedures would have logged it."""

    at: datetime
    card_id: str
    transaction_type: str
    amount: Decimal
    previous_balance: Decimal
    new_balance: Decimal
    client_request_id: str | None
    items: tuple[dict[str, Any], ...] = ()
    point_of_sale: int | None = None
    payment_method: str | None = None
    staff_id: str | None = None
    checkpoint_id: str | None = None
    stripe_session_id: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One row of simulation_runs."""

    run_id: int
    seed: int
    started_at: datetime
    ended_at: datetime | None
    config: dict[str, Any]
    stats: dict[str, Any]


@dataclass(frozen=True)
class GroundTruth:
    """One row of simulation_ground_truth."""

    anomaly_id: int
    run_id: int
    kind: str
    rule: str
    expected_rules: tuple[str, ...]
    card_id: str | None
    transaction_ids: tuple[UUID, ...]
    scan_log_ids: tuple[int, ...]
    started_at: datetime
    injected_at: datetime
    details: dict[str, Any]


def columns(rows: Sequence[Any], *names: str) -> list[list[Any]]:
    """The rows' values of each named attribute, one list per name: unnest()'s arrays."""
    return [list(map(attrgetter(name), rows)) for name in names]


def to_jsonb(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def payment_document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        loaded = json.loads(raw, parse_float=Decimal)
        return loaded if isinstance(loaded, dict) else {}
    return raw if isinstance(raw, dict) else {}


def json_object(raw: Any) -> dict[str, Any]:
    """A jsonb object of festmon's own (numbers as float / int)."""
    if isinstance(raw, str):
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {}
    return raw if isinstance(raw, dict) else {}


def as_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def as_uuid(value: Any) -> UUID | None:
    return None if value is None else UUID(str(value))
