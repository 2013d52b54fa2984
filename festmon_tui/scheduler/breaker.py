"""Async circuit breaker with the original's parameters and an injectable clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from festmon_tui.models import BreakerState, BreakerStatus

T = TypeVar("T")

# A reachable server acknowledges a cancelled statement within milliseconds.
_CANCEL_GRACE_S = 0.25

MonotonicClock = Callable[[], float]
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BreakerOpen(Exception):
    """The breaker rejected a call without running it (OPEN, or HALF_OPEN trials in use)."""


class CallTimedOut(TimeoutError):
    """A guarded call ran longer than the breaker's timeout and was cancelled."""


@dataclass(frozen=True)
class BreakerConfig:
    """The four parameters of the original's breaker."""

    failure_threshold: int = 5
    recovery_timeout_ms: int = 60_000
    half_open_max_calls: int = 2
    timeout_ms: int = 30_000


@dataclass(eq=False)
class CircuitBreaker:
    """CLOSED → OPEN after N consecutive failures → HALF_OPEN after the recovery timeout."""

    name: str
    config: BreakerConfig
    _: KW_ONLY
    clock: MonotonicClock = time.monotonic
    wall_clock: WallClock = utc_now
    on_change: Callable[[BreakerStatus], None] | None = None
    # Exceptions that say nothing about the database's health (e.g. "no longer leader").
    neutral: tuple[type[BaseException], ...] = ()
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _last_error: str | None = field(default=None, init=False)
    _opened_at: datetime | None = field(default=None, init=False)
    _opened_mono: float | None = field(default=None, init=False)
    _half_open_admitted: int = field(default=0, init=False)
    # Bumped on every transition: a call admitted before one cannot move the new state.
    _epoch: int = field(default=0, init=False)

    @property
    def state(self) -> BreakerState:
        self._advance()
        return self._state

    def status(self) -> BreakerStatus:
        """A snapshot for the UI and the status document."""
        self._advance()
        to_probe: float | None = None
        if self._state is BreakerState.OPEN and self._opened_mono is not None:
            recovery_s = self.config.recovery_timeout_ms / 1000
            to_probe = max(0.0, self._opened_mono + recovery_s - self.clock())
        return BreakerStatus(
            name=self.name,
            state=self._state,
            failure_count=self._failures,
            last_error=self._last_error,
            opened_at=self._opened_at,
            seconds_to_probe=to_probe,
            half_open_calls=self._half_open_admitted,
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` under the breaker; cancel it after timeout_ms (a failure)."""
        epoch = self._admit()
        # Its own task, so the deadline holds even when the cancelled call cannot clean up:
        # over a stalled network asyncpg waits for its cancel request before it can roll back
        # (tests/reliability/test_faults.py, the stall test).
        task = asyncio.ensure_future(operation())
        try:
            done, _ = await asyncio.wait((task,), timeout=self.config.timeout_ms / 1000)
        except asyncio.CancelledError:
            self._release(epoch)
            await _abandon(task)
            raise
        if not done:
            await _abandon(task)
            message = f"timed out after {self.config.timeout_ms} ms"
            self.record_failure(message, epoch)
            raise CallTimedOut(message)
        try:
            result = task.result()
        except asyncio.CancelledError:
            self._release(epoch)
            raise
        except self.neutral:
            self._release(epoch)
            raise
        except Exception as exc:
            self.record_failure(_describe(exc), epoch)
            raise
        self.record_success(epoch)
        return result

    def _admit(self) -> int:
        self._advance()
        if self._state is BreakerState.OPEN:
            raise BreakerOpen(f"circuit breaker {self.name} is OPEN: {self._last_error}")
        if self._state is BreakerState.HALF_OPEN:
            if self._half_open_admitted >= self.config.half_open_max_calls:
                raise BreakerOpen(f"circuit breaker {self.name} is HALF_OPEN: trial calls in use")
            self._half_open_admitted += 1
            self._changed()
        return self._epoch

    def _release(self, epoch: int) -> None:
        """A cancelled call (shutdown, lost leadership) is neither a success nor a failure."""
        if epoch == self._epoch and self._state is BreakerState.HALF_OPEN:
            self._half_open_admitted = max(0, self._half_open_admitted - 1)

    def record_success(self, epoch: int | None = None) -> None:
        if epoch is not None and epoch != self._epoch:
            return
        if self._state is BreakerState.CLOSED:
            if self._failures:
                self._failures = 0
                self._changed()
            return
        self._failures = 0
        self._transition(BreakerState.CLOSED)

    def record_failure(self, error: str, epoch: int | None = None) -> None:
        self._last_error = error
        if epoch is not None and epoch != self._epoch:
            self._changed()
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.config.failure_threshold
        ):
            self._open()
        else:
            self._changed()

    def _open(self) -> None:
        self._opened_at = self.wall_clock()
        self._opened_mono = self.clock()
        self._transition(BreakerState.OPEN)

    def _advance(self) -> None:
        """OPEN becomes HALF_OPEN once the recovery timeout has passed."""
        if self._state is not BreakerState.OPEN or self._opened_mono is None:
            return
        if self.clock() - self._opened_mono >= self.config.recovery_timeout_ms / 1000:
            self._transition(BreakerState.HALF_OPEN)

    def _transition(self, state: BreakerState) -> None:
        self._state = state
        self._epoch += 1
        self._half_open_admitted = 0
        if state is BreakerState.CLOSED:
            self._opened_at = None
            self._opened_mono = None
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.status())


async def _abandon(task: asyncio.Future[T]) -> None:
    """Cancel a call and let it clean up for a moment, never longer; it ends on its own later."""
    task.cancel()
    await asyncio.wait((task,), timeout=_CANCEL_GRACE_S)
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an error during cleanup is expected; do not log it as unretrieved


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
