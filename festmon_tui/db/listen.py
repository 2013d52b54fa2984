"""Live event changes: LISTEN on festmon_events, or polling updated_at through a pooler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from festmon_tui.db.connect import ConnectOptions, DatabaseUnavailable, connect
from festmon_tui.db.errors import first_line, translate, translated
from festmon_tui.models import Change, ChangeKind
from festmon_tui.retry import Backoff

log = logging.getLogger(__name__)

CHANNEL = "festmon_events"
# How often an idle LISTEN connection is checked, so a silently dead one is replaced.
_LIVENESS_S = 5.0
# Rows whose updated_at is this much older than the newest seen are fetched again: a transaction
# that commits late carries an older now() (bounded by the statement timeout).
_POLL_SLACK = timedelta(seconds=35)
_POLL_BATCH = 1000

SERVER_NOW_SQL = "SELECT now()"

CHANGED_SINCE_SQL = """
SELECT event_id, event_type, severity, status, created_at, updated_at
FROM monitoring_events
WHERE updated_at >= $1
ORDER BY updated_at, event_id
LIMIT $2
"""

Deliver = Callable[[Change], None]
OnState = Callable[[bool, str | None], None]


def change_from_payload(payload: str) -> Change | None:
    """Parse a NOTIFY payload {event_id, event_type, severity, status, op}; None if malformed.

    op "INSERT" is a new event; every other op is an update of an existing one: "UPDATE" (a
    status change), "repeat" (an active event seen again; occurrence_count in the payload),
    "note" (an operator's note added to its history).
    """
    try:
        data: Any = json.loads(payload)
        event_id = int(data["event_id"])
    except (ValueError, TypeError, KeyError):
        return None
    op = str(data.get("op") or "").upper()
    kind = ChangeKind.EVENT_INSERTED if op.startswith("INSERT") else ChangeKind.EVENT_UPDATED

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    return Change(kind, event_id, text("event_type"), text("severity"), text("status"))


def _change_from_row(row: asyncpg.Record) -> Change:
    inserted = row["created_at"] == row["updated_at"]
    kind = ChangeKind.EVENT_INSERTED if inserted else ChangeKind.EVENT_UPDATED
    return Change(kind, row["event_id"], row["event_type"], row["severity"], row["status"])


class ChangePoller:
    """Finds events changed since the last poll; remembers what it delivered to skip repeats."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._watermark: datetime | None = None
        self._delivered: dict[int, datetime] = {}

    @property
    def started(self) -> bool:
        return self._watermark is not None

    async def start_from_now(self) -> None:
        """Treat everything committed so far as already delivered (a baseline, not news)."""
        with translated():
            now: datetime = await self.pool.fetchval(SERVER_NOW_SQL)
            rows = await self.pool.fetch(CHANGED_SINCE_SQL, now - _POLL_SLACK, _POLL_BATCH)
        self._watermark = now
        self._delivered = {r["event_id"]: r["updated_at"] for r in rows}

    async def poll(self) -> list[Change]:
        """Changes committed since the previous call (each (event, updated_at) once)."""
        if self._watermark is None:
            await self.start_from_now()
        assert self._watermark is not None
        since = self._watermark - _POLL_SLACK
        with translated():
            rows = await self.pool.fetch(CHANGED_SINCE_SQL, since, _POLL_BATCH)
        changes: list[Change] = []
        for row in rows:
            updated: datetime = row["updated_at"]
            if self._delivered.get(row["event_id"]) == updated:
                continue
            self._delivered[row["event_id"]] = updated
            self._watermark = max(self._watermark, updated)
            changes.append(_change_from_row(row))
        horizon = self._watermark - _POLL_SLACK
        self._delivered = {k: v for k, v in self._delivered.items() if v >= horizon}
        return changes


class EventListener:
    """Delivers Change objects from LISTEN/NOTIFY (direct) or polling (pooler mode)."""

    def __init__(
        self,
        options: ConnectOptions,
        pool: asyncpg.Pool,
        deliver: Deliver,
        *,
        poll_interval_ms: int,
        on_state: OnState | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.options = options
        self.backoff = backoff or Backoff()
        self.deliver = deliver
        self.poll_interval_s = poll_interval_ms / 1000
        self.poller = ChangePoller(pool)
        self._on_state = on_state
        self.connected = False
        self.last_error: str | None = None
        self._poll_now = asyncio.Event()

    def nudge(self) -> None:
        """Poll at once (an action was just written); LISTEN needs no nudge: NOTIFY is sent."""
        self._poll_now.set()

    @property
    def mode(self) -> str:
        return "listen" if self.options.supports_listen else "poll"

    async def run(self) -> None:
        """Run until cancelled, reconnecting with the jittered backoff (festmon_tui.retry)."""
        backoff = self.backoff
        while True:
            try:
                if self.options.supports_listen:
                    await self._listen_once()
                else:
                    await self._poll_forever()
            except (DatabaseUnavailable, asyncpg.PostgresError, OSError) as exc:
                error = first_line(exc)
            except Exception as exc:
                mapped = translate(exc)
                if mapped is None:
                    raise
                error = first_line(mapped)
            if self.connected:  # this attempt had worked: a new outage starts from the base
                backoff.reset()
            self._set_state(False, error)
            delay = backoff.next_delay()
            log.debug("listener: retrying in %.1f s (%s)", delay, self.last_error)
            await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        conn = await connect(self.options)
        lost = asyncio.Event()

        def on_notify(_c: object, _pid: int, _channel: str, payload: object) -> None:
            change = change_from_payload(str(payload))
            if change is not None:
                self.deliver(change)

        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            resumed = self.poller.started
            if resumed:
                # Anything committed while we were away is delivered once from the table.
                for change in await self.poller.poll():
                    self.deliver(change)
            await self.poller.start_from_now()
            self._set_state(True, None)
            while not lost.is_set():
                try:
                    async with asyncio.timeout(_LIVENESS_S):
                        await lost.wait()
                except TimeoutError:
                    async with asyncio.timeout(_LIVENESS_S):
                        await conn.fetchval("SELECT 1")
                    await self.poller.start_from_now()
            raise DatabaseUnavailable("the LISTEN connection was closed")
        finally:
            conn.terminate()

    async def _poll_forever(self) -> None:
        if not self.poller.started:
            await self.poller.start_from_now()
        while True:
            changes = await self.poller.poll()
            self._set_state(True, None)
            for change in changes:
                self.deliver(change)
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval_s):
                    await self._poll_now.wait()
            self._poll_now.clear()

    def _set_state(self, connected: bool, error: str | None) -> None:
        changed = connected != self.connected or error != self.last_error
        reconnected = connected and not self.connected
        self.connected, self.last_error = connected, error
        if changed and self._on_state is not None:
            self._on_state(connected, error)
        if reconnected:
            # Subscribers reload once: anything may have changed while we were away.
            self.deliver(Change(ChangeKind.STATE))
