"""The runner: writes the festival's history, then paces the live scripts into the database."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import DatabaseRefused, SchemaMissing, StatementTimedOut
from festmon_tui.db.simulation import (
    BarOrder,
    HistoryBatch,
    HistoryEntry,
    HistoryWriter,
    Recharge,
    RunRecord,
    SimulationStore,
    Truth,
    Written,
)
from festmon_tui.simulator.config import RuleLimits, SimulationConfig
from festmon_tui.simulator.injection import Generator
from festmon_tui.simulator.planner import Planner
from festmon_tui.simulator.steps import (
    Action,
    CreateCard,
    DebitThenFail,
    DirectDebit,
    ExtraRead,
    Pay,
    ReplayFailures,
    Script,
    SilentBalance,
    StaleCredit,
    Step,
)

log = logging.getLogger(__name__)

_EXPECTED_ERRORS = (DatabaseUnavailable, DatabaseRefused, StatementTimedOut)
# Payments of history generated and written at a time (bounds the memory the history takes).
HISTORY_CHUNK = 5000
# Generating the history is CPU work on the event loop the dashboard shares (about 50 µs a
# script): give the loop a turn every this many scripts, so a repaint or a key never waits
# more than a few tens of milliseconds while `festmon demo` builds its day.
HISTORY_YIELD_EVERY = 250
# This many writes failing in a row means the database is gone: stop instead of spinning.
_MAX_CONSECUTIVE_ERRORS = 50


class SimulationFailed(Exception):
    """The run could not go on (the database went away); the message says why."""


@dataclass
class RunStats:
    """What the run wrote, for the run's row, the progress line and the report."""

    history_cards: int = 0
    history_payments: int = 0
    history_scans: int = 0
    scripts: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    refused: int = 0
    scans: int = 0
    duplicate_scans: int = 0
    read_failures: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    divergences: int = 0
    errors: int = 0
    last_error: str | None = None
    card_waits: int = 0
    max_lag_s: float = 0.0
    live_s: float = 0.0
    cards: int = 0
    cards_grown_to: int | None = None

    @property
    def achieved_tps(self) -> float:
        return self.payments / self.live_s if self.live_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "history": {
                "cards": self.history_cards,
                "payments": self.history_payments,
                "scans": self.history_scans,
            },
            "live": {
                "seconds": round(self.live_s, 3),
                "payments": self.payments,
                "achieved_tps": round(self.achieved_tps, 2),
                "refused_insufficient_funds": self.refused,
                "scans": self.scans,
                "duplicate_scans": self.duplicate_scans,
                "read_failures": self.read_failures,
                "scripts": dict(self.scripts),
                "max_lag_s": round(self.max_lag_s, 3),
                "card_waits": self.card_waits,
            },
            "cards": self.cards,
            "cards_grown_to": self.cards_grown_to,
            "anomalies_injected": dict(self.anomalies),
            "anomalies_skipped": dict(self.skipped),
            "divergences": self.divergences,
            "errors": self.errors,
            "last_error": self.last_error,
        }


@dataclass
class _Progress:
    """Ids and time of a script's writes so far, for its ground-truth row."""

    transaction_ids: list[UUID] = field(default_factory=list)
    scan_log_ids: list[int] = field(default_factory=list)
    started_at: datetime | None = None

    def add(self, written: Written) -> None:
        self.transaction_ids.extend(written.transaction_ids)
        self.scan_log_ids.extend(written.scan_log_ids)
        if self.started_at is None:
            self.started_at = written.at


@dataclass(eq=False)
class Simulation:
    """One run: `prepare` (run row + history), `run_live` (paced traffic), `finish`."""

    store: SimulationStore
    config: SimulationConfig
    limits: RuleLimits
    _: KW_ONLY
    max_in_flight: int = 64
    progress: Callable[[RunStats], None] | None = None
    progress_every_s: float = 10.0
    history_chunk: int = HISTORY_CHUNK
    history_scripts: int = field(default=0, init=False)  # scripts of the history generated so far
    stats: RunStats = field(default_factory=RunStats, init=False)
    planner: Planner | None = field(default=None, init=False)
    run: RunRecord | None = field(default=None, init=False)
    live_started_at: datetime | None = field(default=None, init=False)
    ended_at: datetime | None = field(default=None, init=False)
    _live: Iterator[Script] = field(default_factory=lambda: iter(()), init=False)
    _inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _done_at: dict[str, float] = field(default_factory=dict, init=False)
    _consecutive_errors: int = field(default=0, init=False)

    # -- setup ------------------------------------------------------------------------------

    async def prepare(self) -> RunRecord:
        """Check the database, record the run, create the festival and write its history."""
        await self.store.check_schema()
        run, ordinal = await self.store.start_run(self.config.seed, self.config.as_json())
        self.run = run
        planner = Planner(self.config, self.limits, ordinal)
        self.planner = planner
        self.stats.cards = planner.card_count
        self.stats.cards_grown_to = planner.stats.cards_grown_to
        for _ in range(10):
            taken = await self.store.existing_cards([c.card_id for c in planner.cards])
            if not taken:
                break
            planner.rename_cards(taken)
        base = await self.store.now()
        scripts = planner.scripts()
        first_live: Script | None = None
        if self.config.effective_history_s > 0:
            first_live = await self._write_history(scripts, base)
        else:
            first_live = next(scripts, None)
        head = [first_live] if first_live is not None else []
        self._live = itertools.chain(head, scripts)
        return run

    async def _write_history(self, scripts: Iterator[Script], base: datetime) -> Script | None:
        """Write the scripts before time 0 as history, history_chunk payments at a time (the
        whole day at once would leave the process ~110 MB larger at 50 payments/s for good:
        the heap keeps what it grew to). Returns the first live script."""
        balances: dict[str, Decimal] = {}
        created: dict[str, datetime] = {}
        first_live: Script | None = None
        async with self.store.history() as history:
            batch = HistoryBatch()
            for script in scripts:
                if script.at >= 0:
                    first_live = script
                    break
                self._add_history(batch, script, base, balances, created)
                self.history_scripts += 1
                if self.history_scripts % HISTORY_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if len(batch.entries) >= self.history_chunk:
                    await self._write_chunk(history, batch)
                    batch = HistoryBatch()
            await self._write_chunk(history, batch)
            cards = [(cid, balances.get(cid, Decimal(0)), at) for cid, at in created.items()]
            self.stats.history_cards = len(cards)
            await history.finish(cards)
        return first_live

    async def _write_chunk(self, history: HistoryWriter, batch: HistoryBatch) -> None:
        self.stats.history_payments += len(batch.entries)
        self.stats.history_scans += len(batch.scans)
        if batch.entries or batch.scans:
            await history.write(batch)

    def _add_history(
        self,
        batch: HistoryBatch,
        script: Script,
        base: datetime,
        balances: dict[str, Decimal],
        created: dict[str, datetime],
    ) -> None:
        when = base + timedelta(seconds=script.at)
        for step in script.steps:
            action = step.action
            if isinstance(action, CreateCard):
                created[action.card_id] = when
                continue
            if not isinstance(action, Pay):  # history never holds anomalies
                continue
            balances[action.payment.card_id] = action.new
            batch.entries.append(_history_entry(action, when))
            if action.tap is not None:
                tap = replace(action.tap, processing_ms=action.device_ms + 4)
                batch.scans.append((when, tap))
                for extra in action.extra_scans:
                    batch.scans.append((when + timedelta(seconds=extra.offset_s), extra))

    # -- live traffic -----------------------------------------------------------------------

    async def run_live(self, stop: asyncio.Event | None = None) -> RunStats:
        """Write the live scripts on time until the duration (or `stop`), then wind down."""
        planner = self.planner
        if planner is None:
            raise RuntimeError("prepare() first")
        loop = asyncio.get_running_loop()
        self.live_started_at = await self.store.now()
        start = loop.time()
        next_progress = start + self.progress_every_s
        slots = asyncio.Semaphore(self.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        # A write that raised: the database went away for good (SimulationFailed) or a bug,
        # which must end the run loudly with its own traceback.
        fatal: list[BaseException] = []

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            if not task.cancelled() and (exc := task.exception()) is not None:
                fatal.append(exc)

        try:
            for script in self._live:
                if stop is not None and stop.is_set():
                    planner.close()
                if fatal:
                    raise fatal[0]
                delay = start + script.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.stats.max_lag_s = max(self.stats.max_lag_s, -delay)
                await slots.acquire()
                task = asyncio.create_task(self._execute(script))
                tasks.add(task)
                task.add_done_callback(done)
                if self.progress is not None and loop.time() >= next_progress:
                    self.stats.live_s = loop.time() - start
                    self.progress(self.stats)
                    next_progress += self.progress_every_s
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if fatal:
                raise fatal[0]
        finally:
            # Stopped early (cancelled, or a write failed for good): the writes under way are
            # abandoned and given a moment to hand their connections back to the pool.
            pending = set(tasks)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            self.stats.live_s = loop.time() - start
            self.stats.scripts.update(planner.stats.scripts)
        self.ended_at = await self.store.now()
        return self.stats

    async def inject(self, generator: Generator) -> bool:
        """Plan and write one anomaly of `generator` right now; False if none fits now."""
        if self.planner is None:
            raise RuntimeError("prepare() first")
        script = self.planner.inject(generator)
        if script is None:
            return False
        await self._execute(script)
        return True

    async def finish(self) -> None:
        """Record the run's end and statistics."""
        if self.run is not None:
            doc = self.stats.as_json()
            if self.planner is not None:
                doc["planned"] = {
                    "natural_failures": self.planner.stats.natural_failures,
                    "anomalies": dict(self.planner.stats.anomalies_planned),
                    "anomaly_deferrals": self.planner.stats.anomaly_deferrals,
                }
            await self.store.end_run(self.run.run_id, doc, self.ended_at)

    async def _execute(self, script: Script) -> None:
        loop = asyncio.get_running_loop()
        card = script.card_id
        if card is not None:
            previous = self._inflight.get(card)
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            last = self._done_at.get(card)
            if last is not None:
                wait = last + self.limits.card_gap_s - loop.time()
                if wait > 0:
                    self.stats.card_waits += 1
                    await asyncio.sleep(wait)
            current = asyncio.current_task()
            assert current is not None
            self._inflight[card] = current
        try:
            await self._steps(script)
            self._consecutive_errors = 0
        except _EXPECTED_ERRORS as exc:
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            self._consecutive_errors += 1
            log.warning("simulated %s on card %s failed: %s", script.label, card, exc)
            if self._consecutive_errors >= _MAX_CONSECUTIVE_ERRORS:
                raise SimulationFailed(f"the database keeps refusing writes: {exc}") from None
        finally:
            if card is not None:
                self._done_at[card] = loop.time()
                if self._inflight.get(card) is asyncio.current_task():
                    del self._inflight[card]

    async def _steps(self, script: Script) -> None:
        progress = _Progress()
        for step in script.steps:
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            if isinstance(step.action, ReplayFailures) and await self._spike_absorbed():
                self.stats.skipped[script.label] += 1
                return
            truth = self._truth(script, step, progress)
            written = await self._write(step.action, truth)
            progress.add(written)
            self._check(script, step, written)
        if script.anomaly is not None:
            self.stats.anomalies[script.anomaly.kind] += 1

    async def _spike_absorbed(self) -> bool:
        """A spike while an earlier spike event is still active would only update that event."""
        try:
            return await self.store.active_spike_event()
        except SchemaMissing:
            return False

    def _truth(self, script: Script, step: Step, progress: _Progress) -> Truth | None:
        tag = script.anomaly
        if tag is None or not step.records_truth or self.run is None:
            return None
        return Truth(
            run_id=self.run.run_id,
            kind=tag.kind,
            rule=tag.rule,
            expected_rules=tag.expected_rules,
            card_id=script.card_id,
            started_at=progress.started_at,
            transaction_ids=tuple(progress.transaction_ids),
            scan_log_ids=tuple(progress.scan_log_ids),
            details={**tag.details, "planned_at_s": round(script.at, 3)},
        )

    async def _write(self, action: Action, truth: Truth | None) -> Written:
        store = self.store
        if isinstance(action, Pay):
            return await store.pay(
                action.payment, action.tap, action.extra_scans, truth, action.device_ms
            )
        if isinstance(action, CreateCard):
            return Written(at=await store.create_card(action.card_id))
        if isinstance(action, ExtraRead):
            return await store.scans([action.scan], truth)
        if truth is None:
            raise RuntimeError(f"{type(action).__name__} is an anomaly's last step")
        if isinstance(action, DebitThenFail):
            return await store.debit_then_fail(action.order, action.details, [action.tap], truth)
        if isinstance(action, ReplayFailures):
            return await store.replay_failed_orders(action.orders, truth)
        if isinstance(action, SilentBalance):
            return await store.change_balance_silently(action.card_id, action.delta, truth)
        if isinstance(action, StaleCredit):
            return await store.stale_credit(
                action.card_id,
                action.stale_balance,
                action.amount,
                action.stripe_session_id,
                action.metadata,
                truth,
            )
        if isinstance(action, DirectDebit):
            return await store.direct_debit(
                action.order, action.debit, action.extra_details, [action.tap], truth
            )
        raise TypeError(f"unknown action {action!r}")

    def _check(self, script: Script, step: Step, written: Written) -> None:
        action = step.action
        if not isinstance(action, Pay):
            return
        self.stats.payments += 1
        self.stats.scans += len(written.scan_log_ids)
        for extra in action.extra_scans:
            if extra.status == "duplicate":
                self.stats.duplicate_scans += 1
            elif extra.status == "failure":
                self.stats.read_failures += 1
        if not written.success:
            self.stats.refused += 1
        expected_balance = action.new if action.expect_success else action.previous
        if written.success != action.expect_success or (
            written.new_balance is not None and written.new_balance != expected_balance
        ):
            self.stats.divergences += 1
            log.warning(
                "card %s: %s answered %s (balance %s), expected %s (balance %s)",
                action.payment.card_id,
                script.label,
                "ok" if written.success else written.error_code,
                written.new_balance,
                "ok" if action.expect_success else "a refusal",
                expected_balance,
            )

    @property
    def started_at(self) -> datetime | None:
        return self.run.started_at if self.run else None


def _history_entry(action: Pay, when: datetime) -> HistoryEntry:
    payment = action.payment
    if isinstance(payment, BarOrder):
        return HistoryEntry(
            at=when,
            card_id=payment.card_id,
            transaction_type="bar_order",
            amount=payment.total,
            previous_balance=action.previous,
            new_balance=action.new,
            client_request_id=payment.client_request_id,
            items=payment.items,
            point_of_sale=payment.point_of_sale,
        )
    assert isinstance(payment, Recharge)
    return HistoryEntry(
        at=when,
        card_id=payment.card_id,
        transaction_type=payment.recharge_type,
        amount=payment.amount,
        previous_balance=action.previous,
        new_balance=action.new,
        client_request_id=payment.client_request_id,
        payment_method=payment.payment_method,
        staff_id=payment.staff_id,
        checkpoint_id=payment.checkpoint_id,
        stripe_session_id=payment.stripe_session_id,
    )
