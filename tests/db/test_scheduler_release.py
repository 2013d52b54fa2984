"""A scheduler that stops gives the lease back, even one granted while it was stopping.

Found by the multi-instance soak (benchmarks/soak.py): a dashboard quit just as the database
granted it the lease (the previous leader had released it a moment before). The grant's reply
never reached the elector, so it did not know it led and skipped the release: the lease stayed
held by a process that was gone, and nobody ran detection until it expired (the TTL, 15 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

import asyncpg
import pytest

from festmon_tui.db.lease import LeaseGrant, LeaseHolder, LeaseRepository
from festmon_tui.scheduler.leader import LeaderElector, LeaderTiming

ME = LeaseHolder("host-b/2/bb", "host-b", 2)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


class ReplyInFlight:
    """The real lease row; the grant is committed, but its reply has not reached the elector."""

    def __init__(self, lease: LeaseRepository) -> None:
        self.lease = lease
        self.granted = asyncio.Event()

    async def acquire(self, holder: LeaseHolder, ttl_ms: int) -> LeaseGrant | None:
        grant = await self.lease.acquire(holder, ttl_ms)
        self.granted.set()
        await asyncio.Event().wait()  # the process stops before it reads the answer
        return grant

    async def release(self, holder: LeaseHolder) -> None:
        await self.lease.release(holder)


async def test_stopping_while_the_lease_is_being_granted_releases_it(pool: asyncpg.Pool) -> None:
    lease = LeaseRepository(pool)
    store = ReplyInFlight(lease)
    elector = LeaderElector(store, ME, LeaderTiming(15_000))
    running = asyncio.create_task(elector.run())
    async with asyncio.timeout(10):
        await store.granted.wait()
    assert (await lease.current()).holder_id == ME.holder_id  # the database granted it
    assert not elector.is_leader  # ... and the process does not know

    running.cancel()  # what Scheduler.stop() does, then it releases
    with suppress(asyncio.CancelledError):
        await running
    await elector.release()

    assert (await lease.current()).holder_id is None  # another process can take over at once
