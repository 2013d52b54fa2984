"""The scheduler lease row against a real PostgreSQL: acquire, renew, expiry, terms, fencing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from festmon_tui.db.lease import LeaseFence, LeaseHolder, LeaseRepository, NotLeader, check_fence

A = LeaseHolder("host-a/1/aa", "host-a", 1)
B = LeaseHolder("host-b/2/bb", "host-b", 2)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


async def expire_now(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE monitoring_scheduler_lease SET expires_at = clock_timestamp()")


async def test_the_first_holder_gets_term_one_and_a_second_holder_is_refused(
    pool: asyncpg.Pool,
) -> None:
    lease = LeaseRepository(pool)
    grant = await lease.acquire(A, 15_000)
    assert grant is not None and grant.term == 1
    assert await lease.acquire(B, 15_000) is None
    leader = await lease.current(B)
    assert (leader.host, leader.pid, leader.term, leader.is_self) == ("host-a", 1, 1, False)


async def test_renewing_keeps_the_term_and_moves_the_expiry(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    first = await lease.acquire(A, 15_000)
    second = await lease.acquire(A, 15_000)
    assert first is not None and second is not None
    assert second.term == first.term
    assert second.acquired_at == first.acquired_at
    assert second.expires_at > first.expires_at


async def test_an_expired_lease_goes_to_the_next_candidate_with_a_new_term(
    pool: asyncpg.Pool,
) -> None:
    lease = LeaseRepository(pool)
    await lease.acquire(A, 15_000)
    await expire_now(pool)
    grant = await lease.acquire(B, 15_000)
    assert grant is not None and grant.term == 2
    assert await lease.acquire(A, 15_000) is None


async def test_the_same_holder_coming_back_after_expiry_gets_a_new_term(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    await lease.acquire(A, 15_000)
    await expire_now(pool)
    grant = await lease.acquire(A, 15_000)
    assert grant is not None and grant.term == 2


async def test_release_lets_another_holder_take_over_at_once(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    await lease.acquire(A, 60_000)
    await lease.release(A)
    assert (await lease.current()).holder_id is None
    grant = await lease.acquire(B, 60_000)
    assert grant is not None and grant.term == 2


async def test_concurrent_candidates_produce_exactly_one_winner(db_dsn: str) -> None:
    holders = [LeaseHolder(f"h/{i}/x", "h", i) for i in range(8)]
    conns = [await asyncpg.connect(db_dsn) for _ in holders]
    try:
        pools = [LeaseRepository(c) for c in conns]  # type: ignore[arg-type]
        grants = await asyncio.gather(
            *(p.acquire(h, 15_000) for p, h in zip(pools, holders, strict=True))
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(g is not None for g in grants) == 1


async def test_the_fence_holds_only_for_the_current_holder_and_term(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    grant = await lease.acquire(A, 15_000)
    assert grant is not None
    async with pool.acquire() as conn:
        await check_fence(conn, LeaseFence(A.holder_id, grant.term))
        with pytest.raises(NotLeader):
            await check_fence(conn, LeaseFence(A.holder_id, grant.term + 1))
        with pytest.raises(NotLeader):
            await check_fence(conn, LeaseFence(B.holder_id, grant.term))
    await expire_now(pool)
    async with pool.acquire() as conn:
        with pytest.raises(NotLeader):
            await check_fence(conn, LeaseFence(A.holder_id, grant.term))


C = LeaseHolder("host-c/3/cc", "host-c", 3)


async def test_a_refused_candidate_is_a_standby_the_leader_can_count(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    await lease.acquire(A, 15_000)
    assert await lease.standbys(A) == 0

    assert await lease.acquire(B, 15_000) is None
    assert await lease.acquire(C, 15_000) is None
    assert await lease.acquire(C, 15_000) is None  # asking again is still one standby

    assert await lease.standbys(A) == 2
    await lease.release(B)  # a standby that stops says so
    assert await lease.standbys(A) == 1


async def test_a_standby_that_stopped_asking_no_longer_counts(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    await lease.acquire(A, 15_000)
    assert await lease.acquire(B, 15_000) is None
    await pool.execute("UPDATE monitoring_scheduler_standbys SET expires_at = clock_timestamp()")
    assert await lease.standbys(A) == 0


async def test_a_follower_learns_when_the_holders_lease_expires(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    assert await lease.expires_in_s() is None  # nobody holds it
    await lease.acquire(A, 15_000)
    left = await lease.expires_in_s()
    assert left is not None and 14.0 < left <= 15.0
    await expire_now(pool)
    assert await lease.expires_in_s() is None
    await lease.acquire(A, 15_000)
    await lease.release(A)
    assert await lease.expires_in_s() is None
