"""The festival being simulated: bars and tills, top-up points, the menu, the visitors' cards."""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Product:
    """One line of a bar's menu."""

    name: str
    price: Decimal
    is_drink: bool = True


MENU: tuple[tuple[Product, int], ...] = (
    # (product, weight): beer sells most, food least.
    (Product("Beer 25cl", Decimal("4.50")), 30),
    (Product("Beer 50cl", Decimal("8.00")), 12),
    (Product("IPA 33cl", Decimal("6.00")), 6),
    (Product("Cider", Decimal("5.00")), 5),
    (Product("Wine glass", Decimal("5.50")), 6),
    (Product("Spritz", Decimal("8.50")), 6),
    (Product("Gin tonic", Decimal("10.00")), 4),
    (Product("Shot", Decimal("3.50")), 4),
    (Product("Soft drink", Decimal("3.00")), 10),
    (Product("Water 50cl", Decimal("2.00")), 8),
    (Product("Coffee", Decimal("2.50")), 3),
    (Product("Fries", Decimal("4.50"), is_drink=False), 4),
    (Product("Burger", Decimal("9.50"), is_drink=False), 2),
    (Product("Veggie wrap", Decimal("8.50"), is_drink=False), 2),
)

# Reusable cups: a deposit per drink served, refunded when a cup comes back.
CUP = Product("Cup deposit", Decimal("1.00"))
CUP_RETURN = Product("Cup return", Decimal("1.00"))

TOP_UP_AMOUNTS: tuple[tuple[Decimal, int], ...] = (
    (Decimal("10.00"), 15),
    (Decimal("20.00"), 30),
    (Decimal("25.00"), 10),
    (Decimal("30.00"), 15),
    (Decimal("50.00"), 22),
    (Decimal("100.00"), 8),
)

# (recharge type, weight): Stripe from a phone, staffed checkpoints, self-service kiosks.
TOP_UP_KINDS: tuple[tuple[str, int], ...] = (
    ("stripe_recharge", 30),
    ("checkpoint_recharge", 50),
    ("standard_recharge", 20),
)


@functools.cache
def _cumulative(choices: tuple[tuple[Any, int], ...]) -> tuple[tuple[Any, ...], list[int]]:
    return tuple(v for v, _ in choices), list(itertools.accumulate(w for _, w in choices))


def weighted(rng: random.Random, choices: tuple[tuple[Any, int], ...]) -> Any:
    """One value of (value, weight) pairs (one draw of the generator)."""
    values, cumulative = _cumulative(choices)
    return values[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


@dataclass(frozen=True)
class Order:
    """What a visitor orders: the till's item lines and the total charged."""

    items: tuple[dict[str, Any], ...]
    total: Decimal

    @property
    def drinks(self) -> int:
        return sum(
            int(i["quantity"])
            for i in self.items
            if not i.get("is_deposit") and not i.get("is_return")
        )


def _line(product: Product, quantity: int, **flags: bool) -> dict[str, Any]:
    line: dict[str, Any] = {
        "name": product.name,
        "unit_price": str(product.price),
        "quantity": quantity,
    }
    line.update({k: v for k, v in flags.items() if v})
    return line


def order_total(items: tuple[dict[str, Any], ...]) -> Decimal:
    """Σ quantity × unit price, cup returns subtracted (what the till charges)."""
    total = Decimal(0)
    for item in items:
        amount = Decimal(str(item["unit_price"])) * int(item["quantity"])
        total += -amount if item.get("is_return") else amount
    return total.quantize(CENT)


def build_order(lines: list[tuple[Product, int]], cups: int, returns: int) -> Order:
    items: list[dict[str, Any]] = [_line(p, q) for p, q in lines]
    if cups:
        items.append(_line(CUP, cups, is_deposit=True))
    if returns:
        items.append(_line(CUP_RETURN, returns, is_return=True))
    frozen = tuple(items)
    return Order(frozen, order_total(frozen))


def random_order(rng: random.Random) -> Order:
    """1-5 item lines: products with quantities, cup deposits, sometimes cups brought back."""
    line_count = weighted(rng, ((1, 45), (2, 30), (3, 15), (4, 10)))
    lines: list[tuple[Product, int]] = []
    for _ in range(line_count):
        product = weighted(rng, MENU)
        if any(p.name == product.name for p, _ in lines):
            continue
        lines.append((product, weighted(rng, ((1, 60), (2, 28), (3, 8), (4, 4)))))
    drinks = sum(q for p, q in lines if p.is_drink)
    cups = drinks if drinks and rng.random() < 0.6 else 0
    returns = min(rng.randint(1, 3), drinks) if drinks and rng.random() < 0.2 else 0
    return build_order(lines, cups, returns)


def shrink_to(order: Order, budget: Decimal) -> Order | None:
    """The order cut down (fewer lines, smaller quantities) to fit a budget, or None."""
    lines = [
        (item, int(item["quantity"]))
        for item in order.items
        if not item.get("is_deposit") and not item.get("is_return")
    ]
    while lines:
        products = [(Product(str(i["name"]), Decimal(str(i["unit_price"]))), q) for i, q in lines]
        candidate = build_order(products, 0, 0)
        if Decimal(0) < candidate.total <= budget:
            return candidate
        item, quantity = lines[-1]
        lines[-1:] = [(item, quantity - 1)] if quantity > 1 else []
    return None


def order_above(rng: random.Random, amount: Decimal) -> Order | None:
    """A round for a group that costs more than `amount` (at most 5 lines), or None."""
    lines: list[tuple[Product, int]] = []
    drinks = [p for p, _ in MENU if p.is_drink and p.price >= Decimal("4.50")]
    rng.shuffle(drinks)
    for product in drinks[:4]:
        lines.append((product, rng.randint(2, 6)))
        order = build_order(lines, sum(q for _, q in lines), 0)
        if order.total > amount:
            return order
    return None


@dataclass(frozen=True)
class Layout:
    """Where payments happen: bars with tills, staffed checkpoints, self-service kiosks."""

    bars: int
    tills_per_bar: int = 3
    checkpoints: int = 4
    kiosks: int = 3
    bar_weights: tuple[int, ...] = ()

    @classmethod
    def create(cls, bars: int, rng: random.Random) -> Layout:
        # The main-stage bars are busier than the ones at the back of the field.
        weights = tuple(rng.randint(3, 10) for _ in range(bars))
        return cls(bars=bars, bar_weights=weights)

    def random_bar(self, rng: random.Random) -> int:
        return int(weighted(rng, tuple((b + 1, w) for b, w in enumerate(self.bar_weights))))

    @staticmethod
    def till_device(bar: int, till: int) -> str:
        return f"bar{bar:02d}-till{till}"

    @staticmethod
    def bar_location(bar: int, till: int) -> str:
        return f"bar {bar} / till {till}"

    @staticmethod
    def checkpoint(number: int) -> str:
        return f"topup-cp{number:02d}"

    @staticmethod
    def kiosk(number: int) -> str:
        return f"kiosk-{number:02d}"

    @staticmethod
    def staff(checkpoint: int, rng: random.Random) -> str:
        return f"staff-{checkpoint * 10 + rng.randint(1, 4):03d}"


@dataclass(eq=False)
class Card:
    """A visitor's card as the simulator believes it is (the database must agree)."""

    card_id: str
    balance: Decimal = Decimal("0.00")
    arrives_at: float = 0.0
    arrived: bool = False
    free_at: float = 0.0
    failures: list[float] = field(default_factory=list)
    retired: bool = False
    slot: int = -1

    def recent_failures(self, now: float, window_s: float) -> int:
        self.failures = [t for t in self.failures if t > now - window_s]
        return len(self.failures)


class CardPool:
    """The cards: which are free for an operation at the planner's clock, picked at random."""

    def __init__(self) -> None:
        self._ready: list[Card] = []
        self._cooling: list[tuple[float, int, Card]] = []
        self._arrivals: list[tuple[float, int, Card]] = []
        self._counter = 0
        self.active: list[Card] = []  # arrived and not retired, in arrival order

    def __len__(self) -> int:
        return len(self.active)

    def expect(self, card: Card) -> None:
        """A card that arrives at `card.arrives_at` (its first operation is a top-up)."""
        self._counter += 1
        heapq.heappush(self._arrivals, (card.arrives_at, self._counter, card))

    def next_arrival(self, until: float) -> Card | None:
        """The next card due to arrive at or before `until`, removed from the queue."""
        if self._arrivals and self._arrivals[0][0] <= until:
            return heapq.heappop(self._arrivals)[2]
        return None

    def arrived(self, card: Card) -> None:
        card.arrived = True
        self.active.append(card)

    def release(self, card: Card, free_at: float) -> None:
        """The card is busy until `free_at` (virtual seconds)."""
        card.free_at = free_at
        self._counter += 1
        heapq.heappush(self._cooling, (free_at, self._counter, card))

    def advance(self, now: float) -> None:
        while self._cooling and self._cooling[0][0] <= now:
            card = heapq.heappop(self._cooling)[2]
            if not card.retired:
                card.slot = len(self._ready)
                self._ready.append(card)

    def next_free_at(self) -> float | None:
        return self._cooling[0][0] if self._cooling else None

    def take(
        self, rng: random.Random, accept: Callable[[Card], bool] | None = None, tries: int = 24
    ) -> Card | None:
        """A random ready card (satisfying `accept`, if given), removed from the ready set."""
        if not self._ready:
            return None
        for _ in range(tries):
            card = self._ready[rng.randrange(len(self._ready))]
            if accept is None or accept(card):
                self._remove(card)
                return card
        # Rare cards (e.g. a low balance): look at every ready card, in a stable order.
        for card in self._ready:
            if accept is not None and accept(card):
                self._remove(card)
                return card
        return None

    def _remove(self, card: Card) -> None:
        last = self._ready.pop()
        if last is not card:
            self._ready[card.slot] = last
            last.slot = card.slot
        card.slot = -1

    def retire(self, card: Card) -> None:
        """The card leaves the festival (it carries an injected anomaly: keep it untouched)."""
        card.retired = True
        if card.slot >= 0:
            self._remove(card)
        if card in self.active:
            self.active.remove(card)
