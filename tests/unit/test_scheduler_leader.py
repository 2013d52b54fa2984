"""The leader elector against an in-memory lease store and a fake monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from festmon_tui.db.lease import LeaseFence, LeaseGrant, LeaseHolder
from festmon_tui.scheduler.leader import EXPIRY_SLACK_S, LeaderElector, LeaderTiming

T0 = datetime(2026, 7, 4, 18, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class MemoryLease:
    """One lease row with the same rules as the SQL: same holder renews, others wait for expiry."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holder: str | None = None
        self.term = 0
        self.expires = 0.0
        self.down = False
        self.released: list[str] = []

    async def acquire(self, holder: LeaseHolder, ttl_ms: int) -> LeaseGrant | None:
        if self.down:
            raise ConnectionError("database away")
        now = self.clock()
        valid = self.holder is not None and self.expires > now
        if valid and self.holder != holder.holder_id:
            return None
        if not (valid and self.holder == holder.holder_id):
            self.term += 1
        self.holder, self.expires = holder.holder_id, now + ttl_ms / 1000
        return LeaseGrant(self.term, T0, T0 + timedelta(seconds=self.expires))

    async def expires_in_s(self) -> float | None:
        if self.down:
            raise ConnectionError("database away")
        left = self.expires - self.clock()
        return left if self.holder is not None and left > 0 else None

    async def release(self, holder: LeaseHolder) -> None:
        if self.holder == holder.holder_id:
            self.holder = None
            self.released.append(holder.holder_id)


def elector(store: MemoryLease, clock: Clock, name: str, events: list[str]) -> LeaderElector:
    def gained(fence: LeaseFence, _grant: LeaseGrant) -> None:
        events.append(f"{name} gained {fence.term}")

    def lost(fence: LeaseFence, reason: str) -> None:
        events.append(f"{name} lost {fence.term}: {reason}")

    return LeaderElector(
        store,
        LeaseHolder(name, "host", 1),
        LeaderTiming(ttl_ms=15_000),
        clock=clock,
        on_gain=gained,
        on_loss=lost,
    )


async def test_the_first_candidate_becomes_leader_and_the_second_waits() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    first, second = elector(store, clock, "a", events), elector(store, clock, "b", events)
    await first.attempt()
    await second.attempt()
    assert first.is_leader and not second.is_leader
    assert events == ["a gained 1"]


async def test_renewals_keep_the_term_and_push_the_local_deadline() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    leader = elector(store, clock, "a", events)
    await leader.attempt()
    for _ in range(10):
        clock.now += 5
        await leader.attempt()
    assert leader.fence == LeaseFence("a", 1)
    assert events == ["a gained 1"]


async def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    leader = elector(store, clock, "a", events)
    await leader.attempt()
    store.down = True
    clock.now += 11.9  # TTL 15 s minus the 3 s margin = 12 s of local validity
    await leader.attempt()
    assert leader.is_leader
    clock.now += 0.1
    assert not leader.is_leader
    assert events[-1] == "a lost 1: lease not renewed before its local deadline"
    assert clock.now < store.expires  # stepped down while the lease was still valid for others


async def test_a_follower_takes_over_only_after_the_dead_leaders_lease_expired() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    dead, follower = elector(store, clock, "a", events), elector(store, clock, "b", events)
    await dead.attempt()
    clock.now += 14.9
    await follower.attempt()
    assert not follower.is_leader
    clock.now += 0.1
    await follower.attempt()
    assert follower.fence == LeaseFence("b", 2)


async def test_a_leader_whose_lease_was_taken_steps_down_on_its_next_renewal() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    leader = elector(store, clock, "a", events)
    await leader.attempt()
    store.holder, store.term = "intruder", 7
    await leader.attempt()
    assert not leader.is_leader
    assert events[-1] == "a lost 1: the lease was taken by another process"


async def test_release_gives_the_lease_back_so_another_takes_it_at_once() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    first, second = elector(store, clock, "a", events), elector(store, clock, "b", events)
    await first.attempt()
    await first.release()
    await second.attempt()
    assert second.is_leader and not first.is_leader
    assert store.released == ["a"]
    assert events == ["a gained 1", "a lost 1: shutting down", "b gained 2"]


async def test_a_follower_tries_again_just_after_the_dead_leaders_lease_expires() -> None:
    """A dead leader is replaced within the TTL (plus a round trip) of its last renewal, not up
    to a renewal period later: followers wake at the expiry instead of polling past it."""
    clock, events = Clock(), []
    store = MemoryLease(clock)
    dead, follower = elector(store, clock, "a", events), elector(store, clock, "b", events)
    await dead.attempt()  # its last renewal: the lease expires 15 s later
    expires = clock.now + 15.0
    clock.now += 1.0
    while not follower.is_leader:
        await follower.attempt()
        if follower.is_leader:
            break
        clock.now += follower.next_wait_s()
    assert expires < clock.now <= expires + EXPIRY_SLACK_S + 1e-9
    assert follower.fence == LeaseFence("b", 2)


async def test_a_follower_that_cannot_learn_the_expiry_polls_at_the_renewal_period() -> None:
    clock, events = Clock(), []
    store = MemoryLease(clock)
    follower = elector(store, clock, "b", events)
    store.down = True
    await follower.attempt()
    assert follower.next_wait_s() == pytest.approx(5.0)
