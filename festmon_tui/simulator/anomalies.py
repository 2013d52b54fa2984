"""One anomaly generator per detection rule, each writing what the faulty component would write."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

from festmon_tui.db.simulation import BarOrder
from festmon_tui.simulator.config import RuleLimits
from festmon_tui.simulator.festival import (
    CUP,
    TOP_UP_AMOUNTS,
    Card,
    random_order,
    weighted,
)
from festmon_tui.simulator.injection import (
    CHAIN,
    CONSECUTIVE,
    DEDUCTION,
    DUPLICATE_NFC,
    MISMATCH,
    NEGATIVE,
    RACE,
    SPIKE,
    Festival,
    Generator,
    Injection,
    card_with_order,
    card_with_order_above,
    debited,
    put_back,
    ready_card,
    tap_scan,
    till_order,
)
from festmon_tui.simulator.steps import (
    AnomalyTag,
    DebitThenFail,
    DirectDebit,
    ExtraRead,
    ReplayFailures,
    Script,
    SilentBalance,
    StaleCredit,
    Step,
)


class FailedPaymentDebited:
    """The bar's edge function debits the card, fails to record the order, logs a failure."""

    rule = DEDUCTION
    expected = (DEDUCTION, MISMATCH)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        if not festival.failures_fit(1):
            return None
        if (picked := card_with_order(festival, at, "5.00", clean=True)) is None:
            return None
        card, order = picked
        traffic = festival.traffic
        tap, request_id, bar_order = till_order(festival, card, order)
        reason = "bar_orders insert failed after the card was debited: deadlock detected"
        details = {
            "error_code": "DATABASE_ERROR",
            "reason": reason,
            "items": list(order.items),
            "point_of_sale": tap.point_of_sale,
        }
        scan = tap_scan(
            festival,
            card,
            tap,
            request_id,
            "processing_error",
            traffic.device_ms() + 40,
            ("DATABASE_ERROR", reason),
        )
        tag = debited(
            card,
            order.total,
            AnomalyTag("failed_payment_debited", self.rule, self.expected),
            point_of_sale=tap.point_of_sale,
        )
        step = Step(DebitThenFail(bar_order, details, scan), records_truth=True)
        script = Script(at, tag.kind, card.card_id, (step,), tag)
        return Injection(script, card, failure_rows=[at])


class FailureBurst:
    """A card refused three times in a row at a bar (the cashier keeps retrying the round)."""

    rule = CONSECUTIVE
    expected = (CONSECUTIVE,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        attempts = festival.limits.consecutive_count
        if not festival.failures_fit(attempts):
            return None
        if (picked := card_with_order_above(festival, at, "60.00", clean=True)) is None:
            return None
        card, order = picked
        tap = festival.traffic.bar_tap()
        steps: list[Step] = []
        times: list[float] = []
        elapsed = 0.0
        for attempt in range(attempts):
            delay = (
                0.0 if attempt == 0 else festival.limits.card_gap_s + festival.rng.uniform(0.5, 2.0)
            )
            elapsed += delay
            times.append(at + elapsed)
            pay = festival.traffic.bar_order_step(
                card, order, tap, expect_success=False, extras=False
            )
            steps.append(Step(pay, delay, records_truth=attempt == attempts - 1))
        tag = AnomalyTag(
            "failure_burst",
            self.rule,
            self.expected,
            {
                "attempts": attempts,
                "amount": str(order.total),
                "balance": str(card.balance),
                "point_of_sale": tap.point_of_sale,
            },
        )
        script = Script(at, tag.kind, card.card_id, tuple(steps), tag)
        return Injection(script, card, failure_rows=times)


class BarFailureSpike:
    """One bar's tills replay their offline queue on reconnect and every order is refused."""

    rule = SPIKE
    expected = (SPIKE,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        if not festival.spike_allowed(at):
            return None
        rows = festival.spike_rows(at)
        limit = festival.limits.consecutive_count - 1
        memory = festival.limits.failure_memory_s
        capacity = [(c, limit - c.recent_failures(at, memory)) for c in festival.pool.active]
        eligible = [(c, room) for c, room in capacity if room > 0]
        if sum(room for _, room in eligible) < rows:
            return None
        festival.rng.shuffle(eligible)
        # Cards without a recent failure first, one refused order each; a second order on a
        # card only if the festival is too small (a card never reaches the burst threshold).
        eligible.sort(key=lambda pair: -pair[1])
        chosen: list[Card] = [c for c, _ in eligible[:rows]]
        if len(chosen) < rows:
            chosen += [c for c, room in eligible if room > 1][: rows - len(chosen)]
        if len(chosen) < rows:
            return None
        traffic = festival.traffic
        bar = traffic.layout.random_bar(festival.rng)
        reason = "offline queue replay rejected: order queued more than 5 minutes ago"
        orders: list[tuple[BarOrder, dict[str, object]]] = []
        for card in chosen:
            order = random_order(festival.rng)
            request_id = traffic.ids.request_id()
            details: dict[str, object] = {
                "error_code": "SERVER_ERROR",
                "reason": reason,
                "items": list(order.items),
                "point_of_sale": bar,
                "replayed": True,
            }
            orders.append(
                (BarOrder(card.card_id, order.items, order.total, request_id, bar), details)
            )
            card.failures.append(at)
        tag = AnomalyTag(
            "bar_failure_spike",
            self.rule,
            self.expected,
            {
                "point_of_sale": bar,
                "failed_rows": rows,
                "window_s": festival.limits.spike_window_s,
                "cards": len({c.card_id for c in chosen}),
            },
        )
        step = Step(ReplayFailures(tuple(orders)), records_truth=True)
        script = Script(at, tag.kind, None, (step,), tag)
        return Injection(script, None, spike_rows=rows, failed_cards=chosen)


class BalanceBehindLedger:
    """A balance edited in the table editor (a support credit, a manual fix): no ledger row."""

    rule = MISMATCH
    expected = (MISMATCH,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        card = ready_card(festival, at, lambda c: c.balance >= Decimal(0))
        if card is None:
            return None
        rng = festival.rng
        if card.balance >= Decimal("5.00") and rng.random() < 0.3:
            delta = -min(card.balance, Decimal(rng.choice(("2.50", "4.50", "8.00"))))
            writer = "a manual correction that double-charged an order"
        else:
            delta = Decimal(rng.choice(("5.00", "15.00", "20.00", "50.00")))
            writer = "a goodwill credit typed into the table editor"
        before = card.balance
        card.balance += delta
        tag = AnomalyTag(
            "balance_behind_ledger",
            self.rule,
            self.expected,
            {
                "delta": str(delta),
                "balance_before": str(before),
                "balance_after": str(card.balance),
                "writer": writer,
            },
        )
        step = Step(SilentBalance(card.card_id, delta), records_truth=True)
        return Injection(Script(at, tag.kind, card.card_id, (step,), tag), card)


class BrokenBalanceChain:
    """A lost update (a webhook writing from a stale balance) or a torn write (a till debiting
    another amount than the one it logs): the ledger's balance chain no longer holds."""

    rule = CHAIN
    expected = (CHAIN,)

    def __init__(self, variant: str | None = None) -> None:
        self.variant = variant  # "lost_update" or "torn_write"; None: 7 in 10 are lost updates

    def plan(self, festival: Festival, at: float) -> Injection | None:
        variant = self.variant
        if variant is None:
            variant = "lost_update" if festival.rng.random() < 0.7 else "torn_write"
        if variant == "lost_update":
            return self._lost_update(festival, at)
        return self._torn_write(festival, at)

    def _lost_update(self, festival: Festival, at: float) -> Injection | None:
        if (picked := card_with_order(festival, at, "5.00")) is None:
            return None
        card, order = picked
        traffic = festival.traffic
        stale = card.balance
        pay = traffic.bar_order_step(
            card, order, traffic.bar_tap(), expect_success=True, extras=False
        )
        amount = weighted(festival.rng, TOP_UP_AMOUNTS)
        # Later than the race window: this is a lost update, not a race the race rule sees.
        delay = festival.limits.race_window_s + festival.rng.uniform(0.6, 1.4)
        session = traffic.ids.stripe_session()
        credit = StaleCredit(
            card.card_id,
            stale,
            amount,
            session,
            {"source": "checkout.session.completed", "attempt": 2},
        )
        card.balance = stale + amount
        tag = AnomalyTag(
            "lost_update",
            self.rule,
            self.expected,
            {
                "stale_balance": str(stale),
                "lost_debit": str(order.total),
                "credit": str(amount),
                "balance_after": str(card.balance),
            },
        )
        steps = (Step(pay), Step(credit, delay, records_truth=True))
        script = Script(at, tag.kind, card.card_id, steps, tag)
        return Injection(script, card, other_rows=[at, at + delay])

    def _torn_write(self, festival: Festival, at: float) -> Injection | None:
        picked = card_with_order(festival, at, "8.00", Decimal("0.8"), min_total=Decimal("2.00"))
        if picked is None:
            return None
        card, order = picked
        traffic = festival.traffic
        # The till debits the cups' deposit on top but logs the amount without it.
        debit = order.total + CUP.price * max(1, order.drinks)
        if debit > card.balance:
            put_back(festival, card)
            return None
        tap, request_id, bar_order = till_order(festival, card, order)
        scan = tap_scan(festival, card, tap, request_id, "success", traffic.device_ms() + 25)
        before = card.balance
        card.balance -= debit
        tag = AnomalyTag(
            "torn_write",
            self.rule,
            self.expected,
            {
                "logged_amount": str(order.total),
                "debited": str(debit),
                "balance_before": str(before),
                "balance_after": str(card.balance),
            },
        )
        step = Step(DirectDebit(bar_order, debit, {}, scan), records_truth=True)
        return Injection(Script(at, tag.kind, card.card_id, (step,), tag), card, other_rows=[at])


class OfflineOverdraft:
    """A till in offline mode settles an order later without the funds check: below zero."""

    rule = NEGATIVE
    expected = (NEGATIVE,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        if (picked := card_with_order_above(festival, at, "40.00")) is None:
            return None
        card, order = picked
        traffic = festival.traffic
        tap, request_id, bar_order = till_order(festival, card, order)
        offline_s = festival.rng.randint(90, 600)
        scan = tap_scan(festival, card, tap, request_id, "success", traffic.device_ms())
        tag = debited(
            card,
            order.total,
            AnomalyTag("offline_overdraft", self.rule, self.expected),
            offline_for_s=offline_s,
        )
        extra = {"settled_offline": True, "offline_for_s": offline_s}
        step = Step(DirectDebit(bar_order, order.total, extra, scan), records_truth=True)
        return Injection(Script(at, tag.kind, card.card_id, (step,), tag), card, other_rows=[at])


class DoubleRead:
    """The reader reports one tap twice, the debouncer lets the second read through."""

    rule = DUPLICATE_NFC
    expected = (DUPLICATE_NFC,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        if (picked := card_with_order(festival, at, "3.00")) is None:
            return None
        card, order = picked
        traffic = festival.traffic
        tap = traffic.bar_tap()
        pay = traffic.bar_order_step(card, order, tap, expect_success=True, extras=False)
        # The second read lands well inside the duplicate window (the tap itself is logged
        # up to ~0.5 s before the payment ends).
        delay = festival.rng.uniform(0.3, max(0.4, festival.limits.nfc_window_s - 3.0))
        second = traffic.scan(card.card_id, tap, None, "bar_order")
        read = replace(
            second,
            processing_ms=festival.rng.randint(40, 90),
            metadata={**second.metadata, "reader_retry": True},
        )
        tag = AnomalyTag(
            "double_nfc_read",
            self.rule,
            self.expected,
            {"device": tap.device, "second_read_after_s": round(delay, 3)},
        )
        steps = (Step(pay), Step(ExtraRead(read), delay, records_truth=True))
        return Injection(Script(at, tag.kind, card.card_id, steps, tag), card, other_rows=[at])


class RacingPayments:
    """The till times out and resubmits the order with a new request id: charged twice."""

    rule = RACE
    expected = (RACE,)

    def plan(self, festival: Festival, at: float) -> Injection | None:
        if (picked := card_with_order(festival, at, "6.00", Decimal("0.5"))) is None:
            return None
        card, order = picked
        traffic = festival.traffic
        tap = traffic.bar_tap()
        first = traffic.bar_order_step(card, order, tap, expect_success=True, extras=False)
        second = traffic.bar_order_step(card, order, tap, expect_success=True, scanned=False)
        delay = festival.rng.uniform(0.2, max(0.3, festival.limits.race_window_s / 3))
        tag = AnomalyTag(
            "racing_payments",
            self.rule,
            self.expected,
            {
                "amount": str(order.total),
                "second_after_s": round(delay, 3),
                "point_of_sale": tap.point_of_sale,
            },
        )
        steps = (Step(first), Step(second, delay, records_truth=True))
        script = Script(at, tag.kind, card.card_id, steps, tag)
        return Injection(script, card, other_rows=[at, at + delay])


GENERATORS: tuple[Generator, ...] = (
    FailedPaymentDebited(),
    FailureBurst(),
    BarFailureSpike(),
    BalanceBehindLedger(),
    BrokenBalanceChain(),
    OfflineOverdraft(),
    DoubleRead(),
    RacingPayments(),
)


def spike_size(limits: RuleLimits, window_rows_now: int, rate_tps: float) -> int:
    """Failed rows a spike needs: the rule judges the window ending at each new row, so the
    last replayed row's window (the rows of the last `spike_window_s` plus the replay) must
    exceed the threshold, with a margin for rows written meanwhile by the live traffic."""
    rows_before = window_rows_now + 20 + rate_tps * 10
    target = max(limits.spike_rate * 1.3, limits.spike_rate + 0.015)
    rows = math.ceil(target * rows_before / (1 - target))
    return max(rows, limits.spike_min_transactions + 1 - window_rows_now, 3)
