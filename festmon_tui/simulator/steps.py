"""Scripts: what the planner decided, one step per write, executed in order by the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from festmon_tui.db.simulation import BarOrder, Recharge, Scan


@dataclass(frozen=True)
class Pay:
    """A payment through the reference procedures, with the scans of its tap."""

    payment: BarOrder | Recharge
    tap: Scan | None
    extra_scans: tuple[Scan, ...] = ()
    device_ms: int = 0
    expect_success: bool = True
    previous: Decimal = Decimal(0)
    new: Decimal = Decimal(0)
    natural_failure: bool = False


@dataclass(frozen=True)
class CreateCard:
    """A visitor collects a new card at the entrance."""

    card_id: str


@dataclass(frozen=True)
class DebitThenFail:
    """A faulty bar order: the card is debited but the order fails and is logged as failed."""

    order: BarOrder
    details: dict[str, Any]
    tap: Scan


@dataclass(frozen=True)
class ReplayFailures:
    """A till's offline queue replayed on reconnect, every order refused."""

    orders: tuple[tuple[BarOrder, dict[str, Any]], ...]


@dataclass(frozen=True)
class SilentBalance:
    """A balance changed behind the ledger's back (no log row)."""

    card_id: str
    delta: Decimal


@dataclass(frozen=True)
class StaleCredit:
    """A webhook credits from a balance it read before another payment committed."""

    card_id: str
    stale_balance: Decimal
    amount: Decimal
    stripe_session_id: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class DirectDebit:
    """A till settling an order itself, without the funds check (and maybe a wrong debit)."""

    order: BarOrder
    debit: Decimal
    extra_details: dict[str, Any]
    tap: Scan


@dataclass(frozen=True)
class ExtraRead:
    """A read that leads to no payment (a second read of a tap the debouncer let through)."""

    scan: Scan


Action = (
    Pay
    | CreateCard
    | DebitThenFail
    | ReplayFailures
    | SilentBalance
    | StaleCredit
    | DirectDebit
    | ExtraRead
)


@dataclass(frozen=True)
class Step:
    """One write; `delay_s` after the previous step of the script finished."""

    action: Action
    delay_s: float = 0.0
    records_truth: bool = False


@dataclass(frozen=True)
class AnomalyTag:
    """What an anomaly script injects, for its ground-truth row."""

    kind: str
    rule: str
    expected_rules: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Script:
    """Steps on one card (or none), starting at virtual time `at` (seconds from the start)."""

    at: float
    label: str
    card_id: str | None
    steps: tuple[Step, ...]
    anomaly: AnomalyTag | None = None

    @property
    def length_s(self) -> float:
        return sum(step.delay_s for step in self.steps)
