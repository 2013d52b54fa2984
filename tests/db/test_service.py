"""PostgresMonitorService against a real database: state, jobs, actions, manual cycles."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.db.lease import LeaseHolder
from festmon_tui.models import (
    Change,
    ChangeKind,
    ConnectionState,
    EventFilter,
    EventStatus,
    HealthStatus,
    Severity,
    Verb,
)
from festmon_tui.service.api import ActionRefused
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings, load_settings

FAST = {
    "monitoring_interval_critical": 300,
    "monitoring_lease_ttl_ms": 900,
    "monitoring_poll_interval_ms": 200,
}


def settings_for(dsn: str, **overrides: Any) -> Settings:
    return load_settings({"database_url": dsn, **FAST, **overrides}, env_file=None)


def service_for(dsn: str, **kwargs: Any) -> PostgresMonitorService:
    overrides = kwargs.pop("settings", {})
    settings = settings_for(dsn, **overrides)
    return PostgresMonitorService(settings, ConnectOptions.from_settings(settings, dsn), **kwargs)


@pytest.fixture
async def running() -> AsyncIterator[list[PostgresMonitorService]]:
    """Services started by a test, all stopped at its end."""
    services: list[PostgresMonitorService] = []
    yield services
    await asyncio.gather(*(s.stop() for s in services))


async def eventually(condition: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Wait until `condition()` (or the coroutine it returns) is true."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.02)


async def critical_event(conn: asyncpg.Connection, card: str = "CARD-1") -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'test_rule', $1,"
        " NULL, 12.50, 1.0, '{}', '{}')",
        card,
    )
    return event_id


async def test_a_scheduling_service_leads_runs_jobs_and_reports_a_healthy_idle_festival(
    db_dsn: str, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn)
    running.append(service)
    await service.start()
    await eventually(
        lambda: (
            service.state.leader is not None
            and service.state.leader.is_self
            and service.state.jobs[0].last_success
        )
    )
    await service.refresh()
    state = service.state
    assert state.connection is ConnectionState.CONNECTED
    assert state.health_status is HealthStatus.HEALTHY, state.health_reasons
    assert state.jobs[0].name == "critical" and state.jobs[0].next_run_at is not None
    assert state.leader is not None and state.leader.pid == os.getpid()


async def test_the_thresholds_in_the_settings_are_written_to_the_settings_row(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(
        db_dsn,
        settings={"monitoring_consecutive_failure_count": 4, "monitoring_race_window_ms": 1500},
    )
    running.append(service)
    await service.start()
    await eventually(lambda: service.state.leader is not None and service.state.leader.is_self)
    query = "SELECT consecutive_failure_count, race_window, updated_by FROM monitoring_settings"

    async def written() -> asyncpg.Record:
        async with asyncio.timeout(10):
            while True:
                row = await conn.fetchrow(query)
                if row["consecutive_failure_count"] == 4:
                    return row
                await asyncio.sleep(0.02)

    row = await written()
    assert row["race_window"].total_seconds() == 1.5
    assert row["updated_by"] == service.holder.label


async def test_lifecycle_actions_are_audited_with_the_operators_identity(
    db_dsn: str,
    conn: asyncpg.Connection,
    running: list[PostgresMonitorService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.7 50022 10.0.0.1 22")
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    service = service_for(db_dsn, run_scheduler=False, settings={"monitoring_operator": "Alice"})
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    event_id = await critical_event(conn)

    acked = await service.act(event_id, Verb.ACKNOWLEDGE, "on it")
    resolved = await service.act(event_id, Verb.RESOLVE, "refunded the card")

    assert acked.status is EventStatus.INVESTIGATING and acked.acknowledged_by == "Alice"
    assert resolved.status is EventStatus.RESOLVED
    detail = await service.event_detail(event_id)
    assert [(a.action, a.from_status, a.to_status, a.note) for a in detail.actions] == [
        ("acknowledge", "OPEN", "INVESTIGATING", "on it"),
        ("resolve", "INVESTIGATING", "RESOLVED", "refunded the card"),
    ]
    actor = detail.actions[0].actor
    assert actor["ssh_client"] == "203.0.113.7" and actor["operator"] == "Alice"
    assert actor["os_user"] and actor["host"]


async def test_a_note_is_recorded_with_the_operator_and_leaves_the_status_alone(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, run_scheduler=False, settings={"monitoring_operator": "Alice"})
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    event_id = await critical_event(conn)
    await service.act(event_id, Verb.ACKNOWLEDGE)

    await service.act(event_id, Verb.NOTE, "  card holder says the bar refunded cash ")

    detail = await service.event_detail(event_id)
    assert detail.event.status is EventStatus.INVESTIGATING
    note = detail.actions[-1]
    assert (note.action, note.from_status, note.to_status, note.note) == (
        "note",
        "INVESTIGATING",
        "INVESTIGATING",
        "card holder says the bar refunded cash",
    )
    assert note.actor["operator"] == "Alice"
    with pytest.raises(ActionRefused, match="note is required"):
        await service.act(event_id, Verb.NOTE, "  ")


async def test_an_action_reaches_the_change_stream_exactly_once(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, run_scheduler=False)
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    stream = service.changes()

    async def next_event_change() -> Change:
        async with asyncio.timeout(10):
            async for change in stream:
                if change.kind not in (ChangeKind.STATE, ChangeKind.MONITOR):
                    return change
        raise AssertionError("the change stream ended")

    first = await critical_event(conn, "CARD-A")
    while (await next_event_change()).event_id != first:  # the listener is live from here on
        pass

    await service.act(first, Verb.ACKNOWLEDGE)
    after_act = await next_event_change()
    second = await critical_event(conn, "CARD-B")  # a barrier: whatever the act caused is before
    after_barrier = await next_event_change()

    assert (after_act.kind, after_act.event_id, after_act.status) == (
        ChangeKind.EVENT_UPDATED,
        first,
        "INVESTIGATING",
    )
    assert (after_barrier.kind, after_barrier.event_id) == (ChangeKind.EVENT_INSERTED, second)


async def test_the_leader_learns_at_quit_time_that_another_festmon_would_take_over(
    db_dsn: str, running: list[PostgresMonitorService]
) -> None:
    leader = service_for(db_dsn, holder=LeaseHolder("a/1/x", "a", 1))
    running.append(leader)
    await leader.start()
    await eventually(lambda: leader.state.leader is not None and leader.state.leader.is_self)
    alone = await leader.handover()
    standby = service_for(db_dsn, holder=LeaseHolder("b/2/y", "b", 2))
    running.append(standby)
    await standby.start()
    await eventually(lambda: _standbys(leader), timeout_s=10)

    with_standby = await leader.handover()
    follower = await standby.handover()

    assert (alone.leads, alone.standbys) == (True, 0)
    assert "detection stops" in alone.consequence
    assert (with_standby.leads, with_standby.standbys) == (True, 1)
    assert with_standby.consequence == "another festmon will take over within 1 s"
    assert follower.leads is False


async def _standbys(service: PostgresMonitorService) -> bool:
    return (await service.handover()).standbys == 1


async def test_the_database_refusal_of_an_action_reaches_the_caller_with_its_message(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, run_scheduler=False)
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    event_id = await critical_event(conn)
    with pytest.raises(ActionRefused, match="note is required"):
        await service.act(event_id, Verb.RESOLVE, "   ")
    await service.act(event_id, Verb.FALSE_POSITIVE, "test card")
    with pytest.raises(ActionRefused, match="FALSE_POSITIVE"):
        await service.act(event_id, Verb.ACKNOWLEDGE)
    with pytest.raises(ActionRefused, match="does not exist"):
        await service.act(987654, Verb.ACKNOWLEDGE)


async def test_a_viewer_cannot_act_or_run_cycles(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, viewer=True)
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    assert service.scheduler is None
    event_id = await critical_event(conn)
    with pytest.raises(ActionRefused, match="read-only"):
        await service.act(event_id, Verb.ACKNOWLEDGE)
    with pytest.raises(ActionRefused, match="read-only"):
        await service.run_cycle_now()
    events = await service.list_events(EventFilter(severities=frozenset({Severity.CRITICAL})))
    assert [e.event_id for e in events] == [event_id]


async def test_a_reader_login_is_refused_by_the_database_itself(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    role = f"festmon_test_reader_{os.getpid()}"
    await conn.execute(f"DROP ROLE IF EXISTS {role}")
    await conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE monitoring_reader")
    try:
        parts = urlsplit(db_dsn)
        host = parts.netloc.rpartition("@")[2]
        reader_dsn = urlunsplit(parts._replace(netloc=f"{role}@{host}"))
        service = service_for(reader_dsn, run_scheduler=False)
        running.append(service)
        await service.start()
        assert await service.wait_connected(10)
        event_id = await critical_event(conn)
        with pytest.raises(ActionRefused, match="permission denied"):
            await service.act(event_id, Verb.ACKNOWLEDGE)
        await service.stop()
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")


async def test_two_manual_cycles_at_once_run_one_cycle_and_both_get_its_result(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    first = service_for(db_dsn, run_scheduler=False, holder=LeaseHolder("a/1/x", "a", 1))
    second = service_for(db_dsn, run_scheduler=False, holder=LeaseHolder("b/2/y", "b", 2))
    running.extend([first, second])
    for service in running:
        await service.start()
        assert await service.wait_connected(10)
    blocker = await asyncpg.connect(db_dsn)
    try:
        # Hold the health snapshot table so the first cycle stays in progress.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE system_health_snapshots IN EXCLUSIVE MODE")
        cycles = [asyncio.create_task(s.run_cycle_now()) for s in (first, second)]
        await eventually(
            lambda: conn.fetchval(
                "SELECT count(*) FROM monitoring_cycle_runs"
                " WHERE kind = 'manual' AND finished_at IS NULL"
            )
        )
        await tx.rollback()
        results = await asyncio.gather(*cycles)
    finally:
        await blocker.close()
    runs = await conn.fetchval("SELECT count(*) FROM monitoring_cycle_runs WHERE kind = 'manual'")
    assert runs == 1
    assert results[0].cycle_timestamp == results[1].cycle_timestamp
    assert results[0].run_by == results[1].run_by
    assert all(r.success for r in results)


async def test_a_database_that_cannot_be_reached_is_a_state_not_an_exception(
    running: list[PostgresMonitorService],
) -> None:
    service = service_for("postgresql://festmon@127.0.0.1:9/festmon", run_scheduler=False)
    running.append(service)
    await service.start()
    state = await service.wait_ready(10)
    assert state.connection is ConnectionState.UNAVAILABLE
    assert state.last_error and "127.0.0.1" in state.last_error
    with pytest.raises(ActionRefused):
        await service.run_cycle_now()


async def test_the_cycle_result_is_stored_with_its_claim_for_other_processes(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, run_scheduler=False)
    running.append(service)
    await service.start()
    assert await service.wait_connected(10)
    result = await service.run_cycle_now()
    stored = await conn.fetchrow(
        "SELECT success, result, requested_by FROM monitoring_cycle_runs WHERE kind = 'manual'"
    )
    assert stored["success"] is True
    assert json.loads(stored["result"])["health_snapshot_id"] == result.health_snapshot_id
    assert stored["requested_by"] == service.actor.label


async def test_a_job_slower_than_the_breaker_timeout_is_cancelled_on_the_server_too(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(
        db_dsn,
        listen=False,
        settings={"monitoring_circuit_timeout_ms": 400, "monitoring_circuit_failure_threshold": 2},
    )
    running.append(service)
    blocker = await asyncpg.connect(db_dsn)
    try:
        await blocker.execute("BEGIN; LOCK TABLE monitoring_detector_watermarks IN EXCLUSIVE MODE")
        await service.start()
        await eventually(lambda: service.breaker.status().failure_count >= 2)
        assert service.breaker.status().last_error
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'festmon'"
            " AND wait_event_type = 'Lock'"
        )
        # Each cancelled call left nothing behind: at most the call now in flight waits.
        assert await conn.fetchval(waiting) <= 1
    finally:
        await blocker.close()


async def test_through_a_transaction_pooler_the_service_polls_for_live_changes(
    db_dsn: str, conn: asyncpg.Connection, running: list[PostgresMonitorService]
) -> None:
    service = service_for(db_dsn, settings={"monitoring_pooler_mode": "transaction"})
    running.append(service)
    changes = service.changes()
    await service.start()
    await eventually(lambda: service.state.leader is not None and service.state.leader.is_self)
    assert service.state.live_updates == "poll"
    event_id = await critical_event(conn, "CARD-POOLED")
    async with asyncio.timeout(5):
        async for change in changes:
            if change.event_id == event_id:
                break


async def test_an_unexpected_refresh_error_is_shown_and_the_refresh_loop_goes_on(
    db_dsn: str, running: list[PostgresMonitorService], caplog: pytest.LogCaptureFixture
) -> None:
    """An error nobody classified (a bug, an asyncpg error of a new kind) must not freeze the
    state for the rest of the night: it is logged with its traceback, shown as the state's
    error, and the next refresh tries again."""
    service = service_for(db_dsn, run_scheduler=False)
    running.append(service)
    await service.start()
    await eventually(lambda: service.state.connection is ConnectionState.CONNECTED)
    reader = service._reader
    assert reader is not None
    original = reader.read
    failures = iter([RuntimeError("an unforeseen failure")])

    async def read_once_failing(*args: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await original(*args)

    reader.read = read_once_failing  # type: ignore[method-assign]
    await eventually(lambda: service.state.connection is ConnectionState.UNAVAILABLE)
    assert "an unforeseen failure" in (service.state.last_error or "")
    await eventually(lambda: service.state.connection is ConnectionState.CONNECTED)
    assert any("refresh failed" in r.getMessage() and r.exc_info for r in caplog.records)
