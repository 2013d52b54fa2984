"""Keep (or wait for) the scheduler lease; step down before the lease can expire for others."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from festmon_tui.db.errors import DatabaseRefused
from festmon_tui.db.lease import LeaseFence, LeaseGrant, LeaseHolder

log = logging.getLogger(__name__)

MonotonicClock = Callable[[], float]

# A follower tries again this long after the holder's lease expires (by the server's clock), so
# the row is certainly expired when its statement runs. A dead leader is thus replaced at most
# TTL + this + one round trip after its last renewal, which it sent before it died.
EXPIRY_SLACK_S = 0.01


class LeaseStore(Protocol):
    """What the elector needs from the database (db.lease.LeaseRepository, or a fake)."""

    async def acquire(self, holder: LeaseHolder, ttl_ms: int) -> LeaseGrant | None: ...

    async def expires_in_s(self) -> float | None: ...

    async def release(self, holder: LeaseHolder) -> None: ...


@dataclass(frozen=True)
class LeaderTiming:
    """Lease TTL, renewal period and the safety margin kept before the server-side expiry."""

    ttl_ms: int

    @property
    def renew_period_s(self) -> float:
        return self.ttl_ms / 3000

    @property
    def margin_s(self) -> float:
        # Covers clock-rate drift between hosts and the time to cancel running jobs.
        return max(0.05, self.ttl_ms / 5000)

    @property
    def local_validity_s(self) -> float:
        return self.ttl_ms / 1000 - self.margin_s


@dataclass(eq=False)
class LeaderElector:
    """Acquires and renews the lease; `fence` is set only while this process may run jobs.

    The local deadline is measured with the monotonic clock from the moment the last successful
    renewal was *sent*: the server computed expires_at later than that, so the deadline (TTL
    minus a margin) always falls before the lease can be taken by another process.
    """

    store: LeaseStore
    holder: LeaseHolder
    timing: LeaderTiming
    _: KW_ONLY
    clock: MonotonicClock = time.monotonic
    on_gain: Callable[[LeaseFence, LeaseGrant], None] | None = None
    on_loss: Callable[[LeaseFence, str], None] | None = None
    last_error: str | None = field(default=None, init=False)
    _fence: LeaseFence | None = field(default=None, init=False)
    _grant: LeaseGrant | None = field(default=None, init=False)
    _deadline: float = field(default=0.0, init=False)
    # Set once an acquire was sent: the database may have granted it even if the answer
    # never arrived (stopped or timed out meanwhile), so release() must not skip it.
    _asked: bool = field(default=False, init=False)
    _ever_led: bool = field(default=False, init=False)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # While another process leads: when (monotonic) its lease expires, if known.
    _free_at: float | None = field(default=None, init=False)

    @property
    def fence(self) -> LeaseFence | None:
        """The lease this process holds right now, or None (also once the deadline passed)."""
        if self._fence is not None and self.clock() >= self._deadline:
            self._step_down("lease not renewed before its local deadline")
        return self._fence

    @property
    def grant(self) -> LeaseGrant | None:
        return self._grant if self.fence is not None else None

    @property
    def is_leader(self) -> bool:
        return self.fence is not None

    async def run(self) -> None:
        """Try to acquire / renew forever; cancel to stop (then call `release`)."""
        while True:
            await self.attempt()
            await self._pause()

    async def attempt(self) -> None:
        """One acquire-or-renew round trip, bounded so a hung call cannot outlive the deadline."""
        sent = self.clock()
        limit = self.timing.renew_period_s
        if self._fence is not None:
            limit = min(limit, max(0.01, self._deadline - sent))
        self._asked = True
        try:
            async with asyncio.timeout(limit):
                grant = await self.store.acquire(self.holder, self.timing.ttl_ms)
        except TimeoutError:
            self._failed(f"lease renewal timed out after {limit:.1f} s")
            return
        except Exception as exc:  # the database is away: keep trying until the deadline
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, DatabaseRefused) and error != self.last_error:
                # Not an outage but a refusal (a login without monitoring_writer): without
                # this line a headless scheduler would run for ever and never lead, silently.
                log.warning("cannot take the scheduler lease: %s", error)
            self._failed(error)
            return
        self.last_error = None
        if grant is None:
            if self._fence is not None:
                self._step_down("the lease was taken by another process")
            await self._learn_expiry()
            return
        self._free_at = None
        if self._fence is not None and self._fence.term != grant.term:
            self._step_down("the lease term changed")
        self._deadline = sent + self.timing.local_validity_s
        self._grant = grant
        if self._fence is None:
            self._ever_led = True
            self._fence = LeaseFence(self.holder.holder_id, grant.term)
            log.info("leader: acquired term %d as %s", grant.term, self.holder.label)
            if self.on_gain is not None:
                self.on_gain(self._fence, grant)

    async def _learn_expiry(self) -> None:
        """Ask when the holder's lease expires, to try again exactly then (not up to a renewal
        period later): a dead leader is then replaced within the TTL plus a round trip."""
        asked = self.clock()
        try:
            async with asyncio.timeout(self.timing.renew_period_s):
                left = await self.store.expires_in_s()
        except Exception:  # the next attempt will tell; poll at the usual period meanwhile
            left = None
        self._free_at = None if left is None else asked + max(0.0, left)

    def _failed(self, error: str) -> None:
        self.last_error = error
        self._free_at = None
        log.debug("lease attempt failed: %s", error)
        _ = self.fence  # steps down if the deadline passed meanwhile

    def next_wait_s(self) -> float:
        """Seconds until the next attempt: a renewal period, shorter when it matters.

        A leader also wakes exactly at its local deadline (sooner while renewals fail); a
        follower also wakes just after the current lease expires.
        """
        wait = self.timing.renew_period_s
        now = self.clock()
        if self._fence is not None:
            if self.last_error is not None:
                wait = min(wait, 0.5)  # renewal is failing: retry sooner, the clock is ticking
            wait = min(wait, max(0.0, self._deadline - now))
        elif self._free_at is not None:
            wait = min(wait, max(0.0, self._free_at - now) + EXPIRY_SLACK_S)
        return wait

    async def _pause(self) -> None:
        """Wait for the next round (`next_wait_s`), or until nudged."""
        wait = self.next_wait_s()
        self._wakeup.clear()
        try:
            async with asyncio.timeout(wait):
                await self._wakeup.wait()
        except TimeoutError:
            pass
        _ = self.fence

    def nudge(self) -> None:
        """Try again now (e.g. after the database came back)."""
        self._wakeup.set()

    def _step_down(self, reason: str) -> None:
        fence, self._fence, self._grant = self._fence, None, None
        if fence is None:
            return
        log.warning("leader: lost term %d: %s", fence.term, reason)
        if self.on_loss is not None:
            self.on_loss(fence, reason)

    async def release(self) -> None:
        """Give the lease back (shutdown) so another process takes over at once."""
        self._step_down("shutting down")
        if not self._asked:
            return
        try:
            async with asyncio.timeout(0.5):
                await self.store.release(self.holder)
        except Exception as exc:  # it will expire on its own
            # A process that never led most likely holds nothing: no warning for it.
            level = logging.WARNING if self._ever_led else logging.DEBUG
            log.log(level, "could not release the scheduler lease: %s", exc)
