"""Faults between festmon and its database: it keeps running, the breaker acts, nothing is lost.

Each test runs the same two batches of payment traffic (one anomaly per rule) through a service
that meets a fault, and through the detection functions with no fault on a reference database;
once the fault is gone the two sets of (detection_algorithm, fingerprint) must be equal.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from festmon_tui.models import BreakerState, ConnectionState
from tests.reliability import dataset
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database, ReliabilityServer
from tests.reliability.support import (
    FAULT_SETTINGS,
    Observed,
    expected_events,
    hold_mid_cycle,
    observed_service,
    settles_on,
    two_batches,
    until,
)

pytestmark = pytest.mark.slow

FAULT_WAIT_S = 20.0
RECOVERY_WAIT_S = 40.0


async def insert(admin_dsn: str, batch: dataset.Batch) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await dataset.insert(conn, batch)
    finally:
        await conn.close()


async def breaker_cycles_while_down(watched: Observed) -> None:
    """SPEC §7 while the fault lasts: OPEN, a trial after the recovery timeout fails, OPEN again."""
    await until(lambda: watched.breaker is BreakerState.OPEN, FAULT_WAIT_S, "the breaker to open")
    await until(
        lambda: watched.connection is ConnectionState.UNAVAILABLE,
        FAULT_WAIT_S,
        "the state to say UNAVAILABLE",
    )
    assert watched.service.state.last_error
    status = watched.service.breaker.status()
    assert status.failure_count >= FAULT_SETTINGS["monitoring_circuit_failure_threshold"]
    assert status.last_error
    await until(
        lambda: (
            watched.breaker_states[-3:]
            == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]
        ),
        FAULT_WAIT_S,
        f"a failed half-open trial to reopen the breaker ({watched.describe()})",
    )
    assert watched.alive(), "a service task ended during the fault"


async def test_a_network_cut_mid_cycle_opens_the_breaker_and_loses_nothing(
    rel_db: Database, reference_db: Database, proxy: FaultProxy
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    async with observed_service(rel_db.tcp_dsn(port=proxy.port)) as watched:
        await insert(rel_db.admin_dsn, first)
        await settles_on(watched, rel_db.admin_dsn, expected.after_first, RECOVERY_WAIT_S)

        blocker = await hold_mid_cycle(rel_db.admin_dsn)
        await insert(rel_db.admin_dsn, second)  # committed while the cycle is in flight
        proxy.drop()  # every connection reset, and every new one, until forward()
        await blocker.close()
        await breaker_cycles_while_down(watched)

        proxy.forward()
        await until(watched.recovered, RECOVERY_WAIT_S, "the service to recover by itself")
        await settles_on(watched, rel_db.admin_dsn, expected.after_both, RECOVERY_WAIT_S)
        assert watched.alive()


async def test_a_stalled_network_counts_timeouts_opens_the_breaker_and_loses_nothing(
    rel_db: Database, reference_db: Database, proxy: FaultProxy
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    async with observed_service(rel_db.tcp_dsn(port=proxy.port)) as watched:
        await insert(rel_db.admin_dsn, first)
        await settles_on(watched, rel_db.admin_dsn, expected.after_first, RECOVERY_WAIT_S)

        mark = watched.log.mark()
        proxy.stall()  # connections stay open, no byte moves: only timeouts can notice
        await insert(rel_db.admin_dsn, second)
        await breaker_cycles_while_down(watched)
        timeout_s = FAULT_SETTINGS["monitoring_circuit_timeout_ms"] / 1000
        slow = [r for r in watched.log.since(mark) if not r.success and not r.skipped]
        assert slow, "no job call failed during the stall"
        # A stalled call is cut at the breaker timeout (plus a 0.25 s grace and scheduling
        # slack), not when the network comes back.
        assert max(r.duration_ms for r in slow) < (timeout_s + 1.0) * 1000

        proxy.forward()
        await until(watched.recovered, RECOVERY_WAIT_S, "the service to recover by itself")
        await settles_on(watched, rel_db.admin_dsn, expected.after_both, RECOVERY_WAIT_S)
        assert watched.alive()


async def test_an_idle_dashboard_notices_a_stalled_network(
    rel_db: Database, proxy: FaultProxy
) -> None:
    # No jobs (the interval is long): only the state refresh reads the database.
    async with observed_service(
        rel_db.tcp_dsn(port=proxy.port), monitoring_interval_critical=3_600_000
    ) as watched:
        await until(watched.recovered, RECOVERY_WAIT_S, "the first refresh")
        proxy.stall()
        await until(
            lambda: watched.connection is ConnectionState.UNAVAILABLE,
            FAULT_WAIT_S,
            "the state to say UNAVAILABLE",
        )
        proxy.forward()
        await until(watched.recovered, RECOVERY_WAIT_S, "the service to recover by itself")


async def test_statement_timeouts_are_reported_and_the_breaker_recovers_without_loss(
    rel_db: Database, reference_db: Database
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    async with observed_service(rel_db.tcp_dsn()) as watched:
        await insert(rel_db.admin_dsn, first)
        await settles_on(watched, rel_db.admin_dsn, expected.after_first, RECOVERY_WAIT_S)

        # Health reads, health snapshots and detection all wait on these locks until the
        # server's statement_timeout cancels them.
        blocker = await asyncpg.connect(rel_db.admin_dsn)
        await blocker.execute(
            "BEGIN; LOCK TABLE system_health_snapshots, monitoring_detector_watermarks"
            " IN ACCESS EXCLUSIVE MODE"
        )
        await insert(rel_db.admin_dsn, second)
        await breaker_cycles_while_down(watched)
        assert "statement timeout" in (watched.service.state.last_error or "")
        # Every cancelled statement was cancelled on the server too: nothing of festmon waits.
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'festmon'"
            " AND wait_event_type = 'Lock' AND state = 'active'"
            " AND now() - query_start > interval '3 seconds'"
        )
        admin = await asyncpg.connect(rel_db.admin_dsn)
        try:
            assert await admin.fetchval(waiting) == 0
        finally:
            await admin.close()
        await blocker.close()

        await until(watched.recovered, RECOVERY_WAIT_S, "the service to recover by itself")
        await settles_on(watched, rel_db.admin_dsn, expected.after_both, RECOVERY_WAIT_S)


async def test_a_database_stopped_mid_cycle_and_restarted_loses_nothing(
    rel_server: ReliabilityServer, rel_db: Database, reference_db: Database
) -> None:
    first, second = two_batches()
    expected = await expected_events(reference_db.admin_dsn, first, second)
    async with observed_service(rel_db.tcp_dsn()) as watched:
        await insert(rel_db.admin_dsn, first)
        await settles_on(watched, rel_db.admin_dsn, expected.after_first, RECOVERY_WAIT_S)

        blocker = await hold_mid_cycle(rel_db.admin_dsn)
        await insert(rel_db.admin_dsn, second)
        await asyncio.to_thread(rel_server.stop)
        blocker.terminate()
        await breaker_cycles_while_down(watched)

        await asyncio.to_thread(rel_server.start)
        await until(watched.recovered, RECOVERY_WAIT_S, "the service to recover by itself")
        await settles_on(watched, rel_db.admin_dsn, expected.after_both, RECOVERY_WAIT_S)
        assert watched.alive()
