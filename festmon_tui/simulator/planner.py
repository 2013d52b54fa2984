"""The planner: decides, in virtual time and from the seed alone, every operation of a run."""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from festmon_tui.simulator.anomalies import GENERATORS, spike_size
from festmon_tui.simulator.budget import BudgetLimits, FailureBudget
from festmon_tui.simulator.config import RuleLimits, SimulationConfig, cards_needed
from festmon_tui.simulator.festival import Card, CardPool, Layout
from festmon_tui.simulator.injection import SPIKE, Generator, Injection
from festmon_tui.simulator.steps import Pay, Script
from festmon_tui.simulator.traffic import Identifiers, Traffic

# Replacement visitors arrive this long after a card left with an anomaly.
_REPLACEMENT_DELAY_S = (5.0, 45.0)
# Without history, the initial visitors arrive over the first seconds.
_ARRIVAL_WINDOW_S = 20.0

_ROW, _FAILURE, _NATURAL = 0, 1, 2


@dataclass
class PlanStats:
    """What the planner decided (the runner counts what was written)."""

    scripts: Counter[str] = field(default_factory=Counter)
    natural_failures: int = 0
    anomalies_planned: Counter[str] = field(default_factory=Counter)
    anomaly_deferrals: int = 0
    cards_grown_to: int | None = None
    closing_started_at: float | None = None


class Planner:
    """Generates the run's scripts in virtual-time order (history first, then live traffic)."""

    def __init__(self, config: SimulationConfig, limits: RuleLimits, ordinal: int = 0) -> None:
        self.config = config
        self.limits = limits
        self.rng = random.Random(config.seed)
        self.ids = Identifiers(config.seed, ordinal)
        self.layout = Layout.create(config.bars, self.rng)
        self.traffic = Traffic(self.rng, self.ids, self.layout, config)
        self.pool = CardPool()
        self.stats = PlanStats()
        window_rows = max(1, int(limits.spike_window_s * config.rate_tps))
        # Failures of any kind stay under the spike threshold with a margin.
        self.budget = FailureBudget(
            BudgetLimits(
                cap=min(0.044, limits.spike_rate * 0.88),
                min_rows_to_fire=limits.spike_min_transactions,
                window_rows=window_rows,
            )
        )
        # Refused payments are spread out, at most one per 1 / natural_failure_cap rows, so
        # the health success rate stays above its 99 % warning level.
        self._natural_spacing = max(1, round(1 / config.natural_failure_cap))
        self._last_natural_row = 0
        self.history_s = config.effective_history_s
        self.duration_s = config.duration_s
        self.now = -self.history_s
        self._pending: list[tuple[float, int, int]] = []
        self._pending_failures = 0
        self._seq = 0
        self._buckets: deque[tuple[int, int]] = deque()  # (second, rows) of the spike window
        self._last_spike_at: float | None = None
        generators = [g for g in GENERATORS if not config.kinds or g.rule in config.kinds]
        self.generators: tuple[Generator, ...] = tuple(generators)
        self._queue: list[Generator] = []
        self._next_anomaly_at = self._anomaly_interval() * 0.5 if config.inject else float("inf")
        spike_need = 0
        if config.inject and any(g.rule == SPIKE for g in self.generators):
            span = self.history_s + (config.duration_s or limits.spike_window_s)
            rows = int(config.rate_tps * min(span, limits.spike_window_s))
            spike_need = spike_size(limits, rows, config.rate_tps)
        self.card_count = cards_needed(config, limits, spike_need)
        if self.card_count > config.cards:
            self.stats.cards_grown_to = self.card_count
        self.cards: list[Card] = [self._new_card(i) for i in range(self.card_count)]

    # -- cards ------------------------------------------------------------------------------

    def _new_card(self, index: int) -> Card:
        if self.history_s > 0:
            start, span = -self.history_s, self.history_s / 2
        else:
            start, span = (
                0.0,
                min(_ARRIVAL_WINDOW_S, self.card_count / max(1.0, self.config.rate_tps)),
            )
        arrives = start + span * index / max(1, self.card_count) + self.rng.uniform(0, 0.5)
        card = Card(self.ids.card_uid(), arrives_at=arrives)
        self.pool.expect(card)
        return card

    def rename_cards(self, taken: set[str]) -> None:
        """Give new ids to cards whose ids the database already has (an earlier run's)."""
        for card in self.cards:
            while card.card_id in taken:
                card.card_id = self.ids.card_uid()

    # -- the festival protocol the generators use --------------------------------------------

    def failures_fit(self, count: int) -> bool:
        return self.budget.allows(count + self._pending_failures)

    def spike_rows(self, at: float) -> int:
        return spike_size(self.limits, self._rows_in_window(at), self.config.rate_tps)

    def spike_allowed(self, at: float) -> bool:
        # One spike per window (+ two medium intervals): a later one would land while the
        # first is still the active event (a repeat of it, not a new problem).
        if self._last_spike_at is None:
            return True
        quiet = self.limits.spike_window_s + 2 * self.limits.medium_interval_s + 60
        return at - self._last_spike_at > quiet

    # -- accounting ---------------------------------------------------------------------------

    def _rows_in_window(self, at: float) -> int:
        edge = int(at - self.limits.spike_window_s)
        while self._buckets and self._buckets[0][0] <= edge:
            self._buckets.popleft()
        return sum(count for _, count in self._buckets)

    def _count_row(self, at: float) -> None:
        second = int(at)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + 1)
        else:
            self._buckets.append((second, 1))

    def _schedule(self, at: float, kind: int) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (at, self._seq, kind))
        if kind != _ROW:
            self._pending_failures += 1

    def _flush(self, until: float) -> None:
        while self._pending and self._pending[0][0] <= until:
            at, _, kind = heapq.heappop(self._pending)
            self._count_row(at)
            if kind == _ROW:
                self.budget.add_rows()
                continue
            self._pending_failures -= 1
            self.budget.add_failures()
            if kind == _NATURAL:
                self._last_natural_row = self.budget.rows

    def _account(self, script: Script) -> None:
        for step in script.steps:
            if isinstance(step.action, Pay):
                kind = _ROW if step.action.expect_success else _NATURAL
                self._schedule(script.at, kind)

    def _account_injection(self, injection: Injection) -> None:
        for at in injection.failure_rows:
            self._schedule(at, _FAILURE)
        for at in injection.other_rows:
            self._schedule(at, _ROW)

    # -- generation -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop injecting and wind down from the current virtual time (e.g. on Ctrl+C)."""
        if self.duration_s is None or self.duration_s > self.now:
            self.duration_s = max(0.0, self.now)

    @property
    def closing(self) -> bool:
        return self.duration_s is not None and self.now >= self.duration_s

    def _natural_failure_allowed(self, card: Card, at: float) -> bool:
        if at < 0 or self.closing:
            return False
        allowed = self.limits.consecutive_count - 3
        if card.recent_failures(at, self.limits.failure_memory_s) > allowed:
            return False
        if self.budget.rows - self._last_natural_row < self._natural_spacing:
            return False
        return self.failures_fit(1)

    def _anomaly_interval(self) -> float:
        per_min = max(self.config.anomalies_per_min, 1e-6)
        return 60.0 / per_min * self.rng.uniform(0.7, 1.3)

    def _round(self) -> list[Generator]:
        kinds = list(self.generators)
        self.rng.shuffle(kinds)
        return kinds

    def _try_anomaly(self, at: float) -> Script | None:
        """Inject the first kind of the current round that fits now; a kind that does not fit
        (no failure budget, no suitable card, spike too soon) waits at the front."""
        if not self._queue:
            self._queue = self._round()
        for attempt in range(2):
            if attempt == 1:
                # Everything waiting is blocked: let the next round's other kinds go first.
                fresh = [g for g in self._round() if g not in self._queue]
                if not fresh:
                    break
                self._queue.extend(fresh)
            for generator in list(self._queue):
                injection = generator.plan(self, at)
                if injection is None:
                    continue
                self._queue.remove(generator)
                self._apply(injection, at)
                self._next_anomaly_at = at + self._anomaly_interval()
                return injection.script
        self.stats.anomaly_deferrals += 1
        return None

    def inject(self, generator: Generator) -> Script | None:
        """Plan one anomaly of `generator` now, outside the schedule (tests, manual runs)."""
        injection = generator.plan(self, self.now)
        if injection is None:
            return None
        self._apply(injection, self.now)
        return injection.script

    def _apply(self, injection: Injection, at: float) -> None:
        script = injection.script
        assert script.anomaly is not None
        self.stats.anomalies_planned[script.anomaly.kind] += 1
        self._account_injection(injection)
        for card in injection.failed_cards:
            card.failures.append(at)
        if script.anomaly.rule == SPIKE:
            self._last_spike_at = at
        if injection.card is not None:
            # The card keeps its anomaly untouched: later traffic would blur the evidence.
            self.pool.retire(injection.card)
            delay = self.rng.uniform(*_REPLACEMENT_DELAY_S)
            replacement = Card(self.ids.card_uid(), arrives_at=at + script.length_s + delay)
            self.cards.append(replacement)
            self.pool.expect(replacement)

    def _settled(self) -> bool:
        """Every row of the anomalies already under way is written (in virtual time)."""
        return not self._pending

    def scripts(self) -> Iterator[Script]:
        """Every script of the run, in virtual-time order; ends after the closing phase."""
        rate = self.config.rate_tps
        next_op = self.now + self.rng.expovariate(rate)
        while True:
            arriving = self.pool.next_arrival(next_op)
            at = arriving.arrives_at if arriving is not None else next_op
            self.now = max(self.now, at)
            self._flush(self.now)
            if self.closing and self.stats.closing_started_at is None:
                self.stats.closing_started_at = self.now
            if self.closing and self._settled():
                return
            if arriving is not None:
                script = self.traffic.arrival(arriving, self.now)
                self.pool.arrived(arriving)
                self.pool.release(arriving, self.now + self.limits.card_gap_s)
                self._account(script)
                self.stats.scripts[script.label] += 1
                yield script
                continue
            self.pool.advance(self.now)
            if self.now >= 0 and not self.closing and self.now >= self._next_anomaly_at:
                anomaly = self._try_anomaly(self.now)
                if anomaly is not None:
                    self.stats.scripts[anomaly.label] += 1
                    yield anomaly
            next_op = self.now + self.rng.expovariate(rate)
            card = self.pool.take(self.rng)
            if card is None:
                free_at = self.pool.next_free_at()
                if free_at is not None and free_at > self.now:
                    next_op = max(next_op, free_at)
                continue
            may_fail = self._natural_failure_allowed(card, self.now)
            script = self.traffic.operation(card, self.now, may_fail)
            if script.label == "bar_order_refused":
                card.failures.append(self.now)
                self.stats.natural_failures += 1
            self.pool.release(card, self.now + self.limits.card_gap_s)
            self._account(script)
            self.stats.scripts[script.label] += 1
            yield script
