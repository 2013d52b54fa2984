"""The HTTP API while the database goes away: 503 with a JSON body, never a hang, then recovery."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.api.support import READ_TOKEN, eventually, running_api
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database, ReliabilityServer

QUICK = {
    "monitoring_statement_timeout_ms": 1000,
    "monitoring_connect_timeout_ms": 1000,
    "monitoring_api_rate_limits": "health=0,data=0,cycles=0,dashboard=0",
}


async def _status(client: httpx.AsyncClient, path: str) -> int:
    return (await client.get(path)).status_code


async def test_a_database_stopped_mid_request_answers_503_and_the_api_recovers_by_itself(
    rel_server: ReliabilityServer, rel_db: Database
) -> None:
    async with running_api(rel_db.tcp_dsn(), **QUICK) as api, api.client(READ_TOKEN) as client:
        # An exclusive lock parks the request's query inside the server; then the server stops.
        locker = await asyncpg.connect(rel_db.admin_dsn)
        blocker = locker.transaction()
        await blocker.start()
        await locker.execute("LOCK TABLE monitoring_events IN ACCESS EXCLUSIVE MODE")
        in_flight = asyncio.create_task(client.get("/events"))
        await eventually(lambda: _waiting_on_lock(rel_db))
        await asyncio.to_thread(rel_server.stop)
        answer = await in_flight
        await locker.close(timeout=1)

        assert answer.status_code == 503
        assert answer.json()["error"] == "Service Unavailable"
        assert answer.headers["Retry-After"] == "5"
        await eventually(lambda: _status(client, "/health"), timeout_s=20)
        await eventually(lambda: _health_is_unknown(client), timeout_s=20)
        started = time.monotonic()
        down = await client.get("/functions/v1/monitoring-api/events")
        assert down.status_code == 503
        assert time.monotonic() - started < 5
        metrics = await client.get("/metrics")
        assert "festmon_database_up 0.0" in metrics.text

        await asyncio.to_thread(rel_server.start)
        await eventually(lambda: _is(client, "/events", 200), timeout_s=30)
        await eventually(lambda: _is(client, "/health", 200), timeout_s=30)


async def test_a_stalled_network_answers_503_within_the_statement_timeout(
    rel_db: Database, proxy: FaultProxy
) -> None:
    async with (
        running_api(rel_db.tcp_dsn(port=proxy.port), **QUICK) as api,
        api.client(READ_TOKEN) as client,
    ):
        proxy.stall()
        started = time.monotonic()
        answers = await asyncio.gather(*(client.get(p) for p in ("/events", "/dashboard")))
        elapsed = time.monotonic() - started
        proxy.forward()
        await eventually(lambda: _is(client, "/events", 200), timeout_s=30)

    assert [a.status_code for a in answers] == [503, 503]
    assert elapsed < 1.0 + 2.0 + 1.0  # statement timeout + the client's margin + slack


async def _waiting_on_lock(db: Database) -> bool:
    conn = await asyncpg.connect(db.admin_dsn)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
    finally:
        await conn.close()
    return bool(waiting)


async def _health_is_unknown(client: httpx.AsyncClient) -> bool:
    answer = await client.get("/health")
    return answer.status_code == 503 and answer.json()["status"] == "UNKNOWN"


async def _is(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status
