"""Several schedulers on one database (in one process): one leader, and a fast hand-over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.db.lease import LeaseHolder
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings

# Generous enough that a loaded 2-core CI machine renews in time; the logic is TTL-independent.
TTL_MS = 2500


def scheduler(dsn: str, name: str) -> PostgresMonitorService:
    settings = load_settings(
        {
            "database_url": dsn,
            "monitoring_interval_critical": 300,
            "monitoring_lease_ttl_ms": TTL_MS,
            "monitoring_poll_interval_ms": 200,
        },
        env_file=None,
    )
    return PostgresMonitorService(
        settings,
        ConnectOptions.from_settings(settings, dsn),
        listen=False,
        holder=LeaseHolder(f"{name}/x", name, 1),
    )


@pytest.fixture
async def services(
    request: pytest.FixtureRequest, db_dsn: str
) -> AsyncIterator[list[PostgresMonitorService]]:
    group = [scheduler(db_dsn, f"node{i}") for i in range(request.param)]
    for service in group:
        await service.start()
    yield group
    await asyncio.gather(*(s.stop() for s in group))


def leaders(group: list[PostgresMonitorService]) -> list[PostgresMonitorService]:
    return [s for s in group if s.scheduler is not None and s.scheduler.elector.is_leader]


async def until_leader(group: list[PostgresMonitorService], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if leaders(group):
                return
            await asyncio.sleep(0.01)


async def watch_leaders(group: list[PostgresMonitorService], seconds: float) -> int:
    """The most leaders seen at any one moment while sampling for `seconds`."""
    most = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        most = max(most, len(leaders(group)))
        await asyncio.sleep(0.01)
    return most


@pytest.mark.parametrize("services", [2, 3], indirect=True, ids=["two", "three"])
async def test_schedulers_on_one_database_elect_exactly_one_leader(
    services: list[PostgresMonitorService], conn: asyncpg.Connection
) -> None:
    await until_leader(services, 10)
    assert await watch_leaders(services, 2 * TTL_MS / 1000) == 1
    (leader,) = leaders(services)
    holder = await conn.fetchval("SELECT holder_id FROM monitoring_scheduler_lease")
    assert holder == leader.holder.holder_id
    ran = await conn.fetch(
        "SELECT DISTINCT holder_host FROM monitoring_cycle_runs WHERE kind = 'critical'"
    )
    assert [r["holder_host"] for r in ran] == [leader.holder.host]


@pytest.mark.parametrize("services", [3], indirect=True, ids=["three"])
async def test_when_the_leader_stops_another_takes_over_within_one_critical_interval(
    services: list[PostgresMonitorService],
) -> None:
    await until_leader(services, 10)
    (old,) = leaders(services)
    # Not a clean stop: the old leader's connection just disappears without a release.
    assert old.scheduler is not None
    old.scheduler.elector.store = _Unreachable()  # type: ignore[assignment]
    stopped = time.monotonic()
    rest = [s for s in services if s is not old]
    await until_leader(rest, 5)
    took = time.monotonic() - stopped
    # Followers wake when the lease expires (not at their next poll): expiry + a round trip.
    # (0.6 s of slack for a loaded CI machine; polling could add up to TTL/3 = 0.83 s.)
    assert took < 0.6 + TTL_MS / 1000
    assert not old.scheduler.elector.is_leader
    assert len(leaders(services)) == 1


class _Unreachable:
    """A lease store whose database vanished: every call fails."""

    async def acquire(self, *_args: object) -> None:
        raise ConnectionError("network cut")

    async def release(self, *_args: object) -> None:
        raise ConnectionError("network cut")
