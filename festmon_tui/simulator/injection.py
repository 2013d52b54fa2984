"""What every anomaly generator shares: the rules' names, the planner it may use, the
injection it returns, and the card and order helpers."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from festmon_tui.db.simulation import BarOrder, Scan
from festmon_tui.simulator.config import RuleLimits
from festmon_tui.simulator.festival import (
    Card,
    CardPool,
    Order,
    order_above,
    random_order,
    shrink_to,
)
from festmon_tui.simulator.steps import AnomalyTag, Script
from festmon_tui.simulator.traffic import Tap, Traffic

DEDUCTION = "balance_deduction_on_failure"
CONSECUTIVE = "consecutive_failures"
SPIKE = "system_failure_spike"
MISMATCH = "balance_mismatch_detection"
CHAIN = "balance_chain_break"
NEGATIVE = "negative_balance_detection"
DUPLICATE_NFC = "temporal_duplicate_detection"
RACE = "concurrent_transaction_detection"

# SPEC §6.1's rules, in its order (also the report's row order).
RULES: tuple[str, ...] = (
    DEDUCTION,
    CONSECUTIVE,
    SPIKE,
    MISMATCH,
    CHAIN,
    NEGATIVE,
    DUPLICATE_NFC,
    RACE,
)

EVENT_TYPES: dict[str, str] = {
    DEDUCTION: "transaction_failure",
    CONSECUTIVE: "transaction_failure",
    SPIKE: "transaction_failure",
    MISMATCH: "balance_discrepancy",
    CHAIN: "balance_discrepancy",
    NEGATIVE: "balance_discrepancy",
    DUPLICATE_NFC: "duplicate_nfc",
    RACE: "race_condition",
}


class Festival(Protocol):
    """What a generator may use of the planner."""

    rng: random.Random
    traffic: Traffic
    pool: CardPool
    limits: RuleLimits

    def failures_fit(self, count: int) -> bool: ...

    def spike_rows(self, at: float) -> int: ...

    def spike_allowed(self, at: float) -> bool: ...


@dataclass
class Injection:
    """A planned anomaly: its script, the card it spoils, the log rows it will write."""

    script: Script
    card: Card | None
    failure_rows: list[float] = field(default_factory=list)  # virtual times
    other_rows: list[float] = field(default_factory=list)
    spike_rows: int = 0
    failed_cards: list[Card] = field(default_factory=list)


def ready_card(
    festival: Festival,
    at: float,
    accept: Callable[[Card], bool] | None = None,
    *,
    clean: bool = False,
) -> Card | None:
    """A free card; `clean`: without recent failures, for anomalies that write failures (the
    card's earlier failures would add up to a burst the ground truth does not hold)."""

    def fits(card: Card) -> bool:
        if clean and card.recent_failures(at, festival.limits.failure_memory_s):
            return False
        return accept is None or accept(card)

    return festival.pool.take(festival.rng, fits)


def put_back(festival: Festival, card: Card) -> None:
    festival.pool.release(card, card.free_at)


def tap_scan(
    festival: Festival,
    card: Card,
    tap: Tap,
    request_id: str,
    status: str,
    processing_ms: int,
    error: tuple[str, str] | None = None,
) -> Scan:
    """The reader's log line of a tap whose outcome the faulty component decided."""
    return replace(
        festival.traffic.scan(card.card_id, tap, request_id, "bar_order"),
        status=status,
        offset_s=processing_ms / 1000,
        processing_ms=processing_ms,
        error_code=error[0] if error else None,
        error_message=error[1] if error else None,
    )


def affordable_order(festival: Festival, card: Card, share: Decimal = Decimal(1)) -> Order | None:
    budget = (card.balance * share).quantize(Decimal("0.01"))
    order = random_order(festival.rng)
    return order if order.total <= budget else shrink_to(order, budget)


def card_with_order(
    festival: Festival,
    at: float,
    min_balance: str,
    share: Decimal = Decimal(1),
    *,
    min_total: Decimal = Decimal(0),
    clean: bool = False,
) -> tuple[Card, Order] | None:
    """A free card holding min_balance or more, and an order costing at least min_total that
    it can pay from `share` of its balance; None (the card put back) if there is none."""

    def order_for(card: Card) -> Order | None:
        order = affordable_order(festival, card, share)
        return None if order is None or order.total < min_total else order

    fits = Decimal(min_balance)
    return _card_and_order(festival, at, lambda c: c.balance >= fits, order_for, clean)


def card_with_order_above(
    festival: Festival, at: float, max_balance: str, *, clean: bool = False
) -> tuple[Card, Order] | None:
    """A free card holding 0 to max_balance, and a round it cannot pay; None (the card put
    back) if there is none."""
    most = Decimal(max_balance)
    return _card_and_order(
        festival,
        at,
        lambda c: Decimal(0) <= c.balance <= most,
        lambda card: order_above(festival.rng, card.balance),
        clean,
    )


def _card_and_order(
    festival: Festival,
    at: float,
    accept: Callable[[Card], bool],
    order_for: Callable[[Card], Order | None],
    clean: bool,
) -> tuple[Card, Order] | None:
    card = ready_card(festival, at, accept, clean=clean)
    if card is None:
        return None
    order = order_for(card)
    if order is None:
        put_back(festival, card)
        return None
    return card, order


def till_order(festival: Festival, card: Card, order: Order) -> tuple[Tap, str, BarOrder]:
    """A till of a random bar, a new request id, and the order as that till sends it."""
    traffic = festival.traffic
    tap = traffic.bar_tap()
    request_id = traffic.ids.request_id()
    assert tap.point_of_sale is not None
    return (
        tap,
        request_id,
        BarOrder(card.card_id, order.items, order.total, request_id, tap.point_of_sale),
    )


def debited(card: Card, amount: Decimal, tag: AnomalyTag, **details: Any) -> AnomalyTag:
    """Take `amount` off the card's balance; `tag` with the debit (and `details`) recorded."""
    before = card.balance
    card.balance -= amount
    debit = {
        "amount": str(amount),
        "balance_before": str(before),
        "balance_after": str(card.balance),
    }
    return replace(tag, details={**debit, **details})


class Generator(Protocol):
    """Plans one kind of anomaly for one rule."""

    rule: str

    def plan(self, festival: Festival, at: float) -> Injection | None: ...
