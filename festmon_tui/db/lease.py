"""The scheduler lease row: acquire / renew in one statement, release, read who leads."""

from __future__ import annotations

import os
import secrets
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from festmon_tui.db.errors import SchemaMissing, translated
from festmon_tui.models import LeaderInfo

LEASE_NAME = "scheduler"


class NotLeader(Exception):
    """A job's transaction found the lease no longer held by this process and term."""


@dataclass(frozen=True)
class LeaseHolder:
    """This process as a lease candidate: a unique id plus what operators see (host/pid)."""

    holder_id: str
    host: str
    pid: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_this_process(cls) -> LeaseHolder:
        host = socket.gethostname()
        pid = os.getpid()
        return cls(f"{host}/{pid}/{secrets.token_hex(4)}", host, pid)

    @property
    def label(self) -> str:
        return f"{self.host}/{self.pid}"


@dataclass(frozen=True)
class LeaseGrant:
    """A successful acquire or renew: the term and the server-side expiry."""

    term: int
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LeaseFence:
    """The (holder, term) a job must still own when its transaction starts."""

    holder_id: str
    term: int


# One statement, so it works through a transaction-mode pooler and needs no session lock.
# A new holder only gets the row once it has expired; the same holder just extends it.
ACQUIRE_SQL = """
INSERT INTO monitoring_scheduler_lease AS l
    (lease_name, holder_id, holder_host, holder_pid, term, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, $3, $4, 1, clock_timestamp(), clock_timestamp(),
        clock_timestamp() + make_interval(secs => $5::double precision / 1000))
ON CONFLICT (lease_name) DO UPDATE SET
    holder_id = EXCLUDED.holder_id,
    holder_host = EXCLUDED.holder_host,
    holder_pid = EXCLUDED.holder_pid,
    -- A renewal keeps the term; any new tenure (another holder, or ours after it expired)
    -- gets the next one, so a fence from an earlier tenure never matches again.
    term = CASE WHEN l.holder_id = EXCLUDED.holder_id AND l.expires_at > clock_timestamp()
                THEN l.term ELSE l.term + 1 END,
    acquired_at = CASE WHEN l.holder_id = EXCLUDED.holder_id AND l.expires_at > clock_timestamp()
                       THEN l.acquired_at ELSE clock_timestamp() END,
    renewed_at = clock_timestamp(),
    expires_at = EXCLUDED.expires_at
WHERE l.holder_id IS NULL
   OR l.expires_at IS NULL
   OR l.holder_id = EXCLUDED.holder_id
   OR l.expires_at <= clock_timestamp()
RETURNING term, acquired_at, expires_at
"""

RELEASE_SQL = """
UPDATE monitoring_scheduler_lease
SET expires_at = clock_timestamp(), holder_id = NULL
WHERE lease_name = $1 AND holder_id = $2
"""

# Named after LeaderInfo's fields, plus whether the lease is still valid.
CURRENT_SQL = """
SELECT holder_id, holder_host AS host, holder_pid AS pid, term, acquired_at AS since,
       expires_at, expires_at > clock_timestamp() AS valid
FROM monitoring_scheduler_lease
WHERE lease_name = $1
"""

# A scheduler that did not get the lease says it is waiting for it, until its TTL runs out;
# waiting rows long expired are swept on the way (crashed processes).
STANDBY_SQL = """
WITH swept AS (
    DELETE FROM monitoring_scheduler_standbys
    WHERE expires_at < clock_timestamp() - interval '1 hour'
)
INSERT INTO monitoring_scheduler_standbys AS s
    (holder_id, lease_name, holder_host, holder_pid, seen_at, expires_at)
VALUES ($2, $1, $3, $4, clock_timestamp(),
        clock_timestamp() + make_interval(secs => $5::double precision / 1000))
ON CONFLICT (holder_id) DO UPDATE SET seen_at = EXCLUDED.seen_at, expires_at = EXCLUDED.expires_at
"""

LEAVE_SQL = "DELETE FROM monitoring_scheduler_standbys WHERE holder_id = $1"

STANDBYS_SQL = """
SELECT count(*) FROM monitoring_scheduler_standbys
WHERE lease_name = $1 AND holder_id <> $2 AND expires_at > clock_timestamp()
"""

# How long the lease another process holds stays valid (server clock); no row when it is free.
EXPIRES_IN_SQL = """
SELECT extract(epoch FROM expires_at - clock_timestamp())::float8
FROM monitoring_scheduler_lease
WHERE lease_name = $1 AND holder_id IS NOT NULL AND expires_at > clock_timestamp()
"""

FENCE_SQL = """
SELECT EXISTS (
    SELECT 1 FROM monitoring_scheduler_lease
    WHERE lease_name = $1 AND holder_id = $2 AND term = $3 AND expires_at > clock_timestamp()
)
"""


class LeaseRepository:
    """Reads and writes the scheduler lease through a pool."""

    def __init__(self, pool: asyncpg.Pool, lease_name: str = LEASE_NAME) -> None:
        self.pool = pool
        self.lease_name = lease_name

    async def acquire(self, holder: LeaseHolder, ttl_ms: int) -> LeaseGrant | None:
        """Acquire or renew; None when another holder's lease is still valid."""
        with translated():
            row = await self.pool.fetchrow(
                ACQUIRE_SQL,
                self.lease_name,
                holder.holder_id,
                holder.host,
                holder.pid,
                ttl_ms,
            )
        if row is None:
            await self._wait_in_line(holder, ttl_ms)
            return None
        return LeaseGrant(row["term"], row["acquired_at"], row["expires_at"])

    async def _wait_in_line(self, holder: LeaseHolder, ttl_ms: int) -> None:
        """Record this process as a standby; a schema without the table (before V0015) has none."""
        try:
            with translated():
                await self.pool.execute(
                    STANDBY_SQL,
                    self.lease_name,
                    holder.holder_id,
                    holder.host,
                    holder.pid,
                    ttl_ms,
                )
        except SchemaMissing:
            pass

    async def expires_in_s(self) -> float | None:
        """Seconds until the current lease expires (None when nobody holds a valid one)."""
        with translated():
            left: float | None = await self.pool.fetchval(EXPIRES_IN_SQL, self.lease_name)
        return left

    async def release(self, holder: LeaseHolder) -> None:
        with translated():
            await self.pool.execute(RELEASE_SQL, self.lease_name, holder.holder_id)
        with suppress(SchemaMissing), translated():
            await self.pool.execute(LEAVE_SQL, holder.holder_id)

    async def standbys(self, me: LeaseHolder) -> int | None:
        """How many other schedulers wait for the lease now; None before V0015."""
        try:
            with translated():
                count: int = await self.pool.fetchval(STANDBYS_SQL, self.lease_name, me.holder_id)
        except SchemaMissing:
            return None
        return count

    async def current(self, me: LeaseHolder | None = None) -> LeaderInfo:
        """Who leads now (holder None when nobody holds a valid lease)."""
        with translated():
            row = await self.pool.fetchrow(CURRENT_SQL, self.lease_name)
        if row is None or not row["valid"] or row["holder_id"] is None:
            return LeaderInfo(None, None, None, None, None)
        info = dict(row)
        del info["valid"]
        return LeaderInfo(**info, is_self=me is not None and row["holder_id"] == me.holder_id)


async def check_fence(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    fence: LeaseFence,
    lease_name: str = LEASE_NAME,
) -> None:
    """Raise NotLeader unless `fence` still holds a valid lease (inside the job's transaction)."""
    held = await conn.fetchval(FENCE_SQL, lease_name, fence.holder_id, fence.term)
    if not held:
        raise NotLeader(f"lease term {fence.term} is no longer held by this process")
