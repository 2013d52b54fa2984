"""Live updates: LISTEN/NOTIFY delivers within a second; polling does the same through a pooler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.db.listen import EventListener, change_from_payload
from festmon_tui.models import Change, ChangeKind
from festmon_tui.retry import Backoff


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def start_listener(
    db_dsn: str, pool: asyncpg.Pool, pooled: bool
) -> tuple[asyncio.Task[None], asyncio.Queue[Change], EventListener]:
    queue: asyncio.Queue[Change] = asyncio.Queue()
    listener = EventListener(
        ConnectOptions(db_dsn, pooled, 5.0, 30_000), pool, queue.put_nowait, poll_interval_ms=200
    )
    task = asyncio.create_task(listener.run())
    async with asyncio.timeout(10):
        while True:  # the first STATE change says the listener is connected
            if (await queue.get()).kind is ChangeKind.STATE:
                break
    return task, queue, listener


async def next_event(queue: asyncio.Queue[Change], timeout_s: float) -> Change:
    async with asyncio.timeout(timeout_s):
        while True:
            change = await queue.get()
            if change.kind is not ChangeKind.STATE:
                return change


async def insert_event(conn: asyncpg.Connection, card: str) -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('duplicate_nfc', 'MEDIUM', 'test_rule', $1)", card
    )
    return event_id


@pytest.mark.parametrize("pooled", [False, True], ids=["listen", "poll"])
async def test_an_event_inserted_by_another_connection_arrives_within_a_second(
    db_dsn: str, pool: asyncpg.Pool, conn: asyncpg.Connection, pooled: bool
) -> None:
    task, queue, listener = await start_listener(db_dsn, pool, pooled)
    try:
        assert listener.mode == ("poll" if pooled else "listen")
        started = time.monotonic()
        event_id = await insert_event(conn, "CARD-LIVE")
        change = await next_event(queue, 1.0)
        assert time.monotonic() - started < 1.0
        assert (change.kind, change.event_id, change.severity) == (
            ChangeKind.EVENT_INSERTED,
            event_id,
            "MEDIUM",
        )
    finally:
        task.cancel()


@pytest.mark.parametrize("pooled", [False, True], ids=["listen", "poll"])
async def test_a_status_change_arrives_as_an_update(
    db_dsn: str, pool: asyncpg.Pool, conn: asyncpg.Connection, pooled: bool
) -> None:
    event_id = await insert_event(conn, "CARD-ACK")
    task, queue, _ = await start_listener(db_dsn, pool, pooled)
    try:
        await conn.execute(
            'SELECT acknowledge_monitoring_event($1, \'{"os_user": "test"}\'::jsonb, NULL)',
            event_id,
        )
        change = await next_event(queue, 1.0)
        assert (change.kind, change.event_id, change.status) == (
            ChangeKind.EVENT_UPDATED,
            event_id,
            "INVESTIGATING",
        )
    finally:
        task.cancel()


@pytest.mark.parametrize("pooled", [False, True], ids=["listen", "poll"])
async def test_a_repeat_and_a_note_arrive_as_updates(
    db_dsn: str, pool: asyncpg.Pool, conn: asyncpg.Connection, pooled: bool
) -> None:
    event_id = await insert_event(conn, "CARD-AGAIN")
    task, queue, _ = await start_listener(db_dsn, pool, pooled)
    try:
        assert await insert_event(conn, "CARD-AGAIN") == event_id  # seen again: a repeat
        repeat = await next_event(queue, 1.0)
        await conn.execute(
            "SELECT add_monitoring_event_note($1, '{\"os_user\": \"test\"}'::jsonb, 'called')",
            event_id,
        )
        note = await next_event(queue, 1.0)
    finally:
        task.cancel()
    for change in (repeat, note):
        assert (change.kind, change.event_id, change.status) == (
            ChangeKind.EVENT_UPDATED,
            event_id,
            "OPEN",
        )


def test_repeat_and_note_notifications_are_updates() -> None:
    for op in ("repeat", "note", "UPDATE"):
        payload = f'{{"event_id": 7, "op": "{op}", "status": "OPEN", "occurrence_count": 3}}'
        change = change_from_payload(payload)
        assert change == Change(ChangeKind.EVENT_UPDATED, 7, None, None, "OPEN")


def test_a_malformed_notification_payload_is_ignored() -> None:
    assert change_from_payload("not json") is None
    assert change_from_payload('{"event_id": "x"}') is None
    change = change_from_payload('{"event_id": 5, "op": "INSERT", "severity": null}')
    assert change == Change(ChangeKind.EVENT_INSERTED, 5, None, None, None)


async def test_each_new_outage_starts_from_the_shortest_wait(
    db_dsn: str, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """After a reconnect the backoff starts again; it used to keep growing towards its cap."""
    queue: asyncio.Queue[Change] = asyncio.Queue()
    backoff = Backoff(0.01, 0.05)
    listener = EventListener(
        ConnectOptions(db_dsn, False, 5.0, 30_000),
        pool,
        queue.put_nowait,
        poll_interval_ms=200,
        backoff=backoff,
    )
    task = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(10):
            while (await queue.get()).kind is not ChangeKind.STATE:
                pass  # the STATE change says the listener is connected
        for _ in range(3):
            assert listener.connected
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'festmon' AND datname = current_database()"
            )
            assert killed == 1
            async with asyncio.timeout(10):
                while (await queue.get()).kind is not ChangeKind.STATE:
                    pass  # reconnected
            assert backoff.failures == 1  # one failure since the last success, not one more each
    finally:
        task.cancel()
