"""Normal festival traffic: visitors top up and order at the bars, readers log every tap."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal

from festmon_tui.db.simulation import BarOrder, Recharge, Scan
from festmon_tui.simulator.config import SimulationConfig
from festmon_tui.simulator.festival import (
    TOP_UP_AMOUNTS,
    TOP_UP_KINDS,
    Card,
    Layout,
    Order,
    random_order,
    shrink_to,
    weighted,
)
from festmon_tui.simulator.steps import CreateCard, Pay, Script, Step

LOW_BALANCE = Decimal("10.00")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Identifiers:
    """Card UIDs, request ids and Stripe sessions; unique per run, reproducible per seed."""

    def __init__(self, seed: int, ordinal: int) -> None:
        self._rng = random.Random(f"festmon-ids:{seed}:{ordinal}")

    def card_uid(self) -> str:
        # 7-byte NTAG UIDs start with NXP's manufacturer byte 0x04.
        return "04" + "".join(f"{self._rng.getrandbits(8):02X}" for _ in range(6))

    def request_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def stripe_session(self) -> str:
        value = self._rng.getrandbits(143)
        chars = []
        for _ in range(24):
            value, digit = divmod(value, 62)
            chars.append(_BASE62[digit])
        return "cs_live_" + "".join(chars)


@dataclass(frozen=True)
class Tap:
    """Where a card was tapped: the reader and what it is attached to."""

    device: str
    location: str
    point_of_sale: int | None = None


def raw_data(card_id: str) -> str:
    return f"UID={card_id};ATQA=0044;SAK=00;TYPE=NTAG215"


@dataclass(eq=False)
class Traffic:
    """Builds the scripts of normal operations and keeps each card's balance as predicted."""

    rng: random.Random
    ids: Identifiers
    layout: Layout
    config: SimulationConfig

    # -- places -----------------------------------------------------------------------------

    def bar_tap(self, bar: int | None = None) -> Tap:
        bar = bar if bar is not None else self.layout.random_bar(self.rng)
        till = self.rng.randint(1, self.layout.tills_per_bar)
        return Tap(Layout.till_device(bar, till), Layout.bar_location(bar, till), bar)

    def scan(self, card_id: str, tap: Tap, request_id: str | None, operation: str) -> Scan:
        metadata: dict[str, object] = {"operation": operation}
        if tap.point_of_sale is not None:
            metadata["point_of_sale"] = tap.point_of_sale
        return Scan(
            card_id=card_id,
            device=tap.device,
            location=tap.location,
            raw_data=raw_data(card_id),
            operation_id=f"{operation}:{(request_id or '')[:8]}",
            client_request_id=request_id,
            metadata=metadata,
        )

    def device_ms(self) -> int:
        """The reader's and the network's share of a tap's processing time."""
        return int(self.rng.triangular(120, 450, 180))

    def extra_reads(self, card_id: str, tap: Tap, device_ms: int) -> tuple[Scan, ...]:
        """Now and then a debounced second read, or a failed read the cashier retried."""
        extras: list[Scan] = []
        read = Scan(card_id, tap.device, tap.location, raw_data(card_id))
        if self.rng.random() < self.config.read_failure_share:
            extras.append(
                replace(
                    read,
                    card_id=None,
                    raw_data="UID=04??;ATQA=0044",
                    status="failure",
                    offset_s=-self.rng.uniform(0.8, 2.0),
                    processing_ms=int(self.rng.uniform(40, 120)),
                    error_code="READ_ERROR",
                    error_message="NFC read failed: tag left the field during anticollision",
                )
            )
        if self.rng.random() < self.config.duplicate_scan_share:
            debounce_s = self.rng.uniform(0.05, max(0.06, device_ms / 1000 * 0.8))
            extras.append(
                replace(
                    read,
                    status="duplicate",
                    offset_s=debounce_s,
                    processing_ms=0,
                    error_code="DEBOUNCED",
                    error_message="second read of the same card within the 2000 ms debounce window",
                    metadata={"debounce_ms": 2000},
                )
            )
        return tuple(extras)

    # -- operations -------------------------------------------------------------------------

    def bar_order_step(
        self,
        card: Card,
        order: Order,
        tap: Tap,
        *,
        expect_success: bool,
        scanned: bool = True,
        extras: bool = True,
        natural: bool = False,
    ) -> Pay:
        """A bar order; updates the card's predicted balance when it succeeds."""
        request_id = self.ids.request_id()
        assert tap.point_of_sale is not None
        payment = BarOrder(card.card_id, order.items, order.total, request_id, tap.point_of_sale)
        device_ms = self.device_ms()
        previous = card.balance
        if expect_success:
            card.balance -= order.total
        return Pay(
            payment=payment,
            tap=self.scan(card.card_id, tap, request_id, "bar_order") if scanned else None,
            extra_scans=self.extra_reads(card.card_id, tap, device_ms)
            if scanned and extras
            else (),
            device_ms=device_ms,
            expect_success=expect_success,
            previous=previous,
            new=card.balance,
            natural_failure=natural,
        )

    def top_up_step(
        self, card: Card, kind: str | None = None, amount: Decimal | None = None
    ) -> Pay:
        kind = kind or weighted(self.rng, TOP_UP_KINDS)
        amount = amount or weighted(self.rng, TOP_UP_AMOUNTS)
        previous = card.balance
        card.balance += amount
        device_ms = self.device_ms()
        if kind == "stripe_recharge":
            payment = Recharge(
                card.card_id,
                amount,
                kind,
                None,
                "stripe",
                stripe_session_id=self.ids.stripe_session(),
            )
            return Pay(payment, None, (), device_ms, True, previous, card.balance)
        request_id = self.ids.request_id()
        method = "cash" if self.rng.random() < 0.55 else "card"
        if kind == "checkpoint_recharge":
            number = self.rng.randint(1, self.layout.checkpoints)
            tap = Tap(Layout.checkpoint(number), f"top-up checkpoint {number}")
            payment = Recharge(
                card.card_id,
                amount,
                kind,
                request_id,
                method,
                staff_id=Layout.staff(number, self.rng),
                checkpoint_id=f"CP-{number:02d}",
            )
        else:
            number = self.rng.randint(1, self.layout.kiosks)
            tap = Tap(Layout.kiosk(number), f"self-service kiosk {number}")
            payment = Recharge(card.card_id, amount, kind, request_id, method)
        return Pay(
            payment,
            self.scan(card.card_id, tap, request_id, kind),
            self.extra_reads(card.card_id, tap, device_ms),
            device_ms,
            True,
            previous,
            card.balance,
        )

    def arrival(self, card: Card, at: float) -> Script:
        """A visitor collects a card and loads it (online beforehand, or at the entrance)."""
        kind = "stripe_recharge" if self.rng.random() < 0.4 else "checkpoint_recharge"
        amount = weighted(self.rng, TOP_UP_AMOUNTS[1:])
        steps = (Step(CreateCard(card.card_id)), Step(self.top_up_step(card, kind, amount)))
        return Script(at, "arrival", card.card_id, steps)

    def operation(self, card: Card, at: float, may_fail: bool) -> Script:
        """What a visitor does next: top up when low, else order (and maybe be refused)."""
        if (card.balance < LOW_BALANCE and self.rng.random() < 0.75) or self.rng.random() < 0.05:
            return Script(at, "top_up", card.card_id, (Step(self.top_up_step(card)),))
        order = random_order(self.rng)
        tap = self.bar_tap()
        if order.total <= card.balance:
            step = self.bar_order_step(card, order, tap, expect_success=True)
            return Script(at, "bar_order", card.card_id, (Step(step),))
        # Short of money: some visitors try anyway and get refused (a natural failure).
        if may_fail and self.rng.random() < 0.5:
            step = self.bar_order_step(card, order, tap, expect_success=False, natural=True)
            return Script(at, "bar_order_refused", card.card_id, (Step(step),))
        smaller = shrink_to(order, card.balance)
        if smaller is not None:
            step = self.bar_order_step(card, smaller, tap, expect_success=True)
            return Script(at, "bar_order", card.card_id, (Step(step),))
        return Script(at, "top_up", card.card_id, (Step(self.top_up_step(card)),))
