"""Reading a hot standby: its replay position and lag, and a pool that falls back to the primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import translate, translated

# On a standby: is it one, how far has it replayed and received, when was the last transaction
# it replayed committed (now() minus that is the data's age while WAL keeps coming), and when did
# its streaming WAL receiver last hear from the primary (an idle primary still sends keepalives,
# so a standby that replayed all it received is that old at most). LSNs as text: asyncpg has no
# pg_lsn codec. pg_stat_wal_receiver's times need pg_read_all_stats; without it they are NULL.
STANDBY_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
            ELSE pg_current_wal_lsn() END::text AS replay_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age_s,
       (SELECT EXTRACT(EPOCH FROM now() - last_msg_receipt_time)::float8
          FROM pg_stat_wal_receiver WHERE status = 'streaming') AS receipt_age_s
"""

# On the primary: how far it has written. A standby at or past this LSN has everything committed
# before the call, so it is not behind at all, however old its last replayed transaction is.
PRIMARY_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
            ELSE pg_current_wal_lsn() END::text AS lsn
"""


def lsn_number(text: str | None) -> int | None:
    """'16/B374D848' as one comparable integer (None stays None)."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class StandbyPosition:
    in_recovery: bool
    replay_lsn: int | None
    receive_lsn: int | None
    replay_age_s: float | None  # None: it has replayed no transaction since it started
    receipt_age_s: float | None  # None: no streaming WAL receiver (or no right to see it)

    def lag_s(self, primary_lsn: int | None) -> float | None:
        """The age of the data this standby serves: 0 when it has replayed up to the primary's
        position; without that position, the receiver's silence when it replayed all it
        received, else the age of the last transaction it replayed."""
        if not self.in_recovery:
            return 0.0
        if primary_lsn is not None and self.replay_lsn is not None:
            if self.replay_lsn >= primary_lsn:
                return 0.0
            return self.replay_age_s
        caught_up = self.receive_lsn is not None and self.replay_lsn == self.receive_lsn
        if caught_up and self.receipt_age_s is not None:
            if self.replay_age_s is None:
                return self.receipt_age_s
            return min(self.receipt_age_s, self.replay_age_s)
        return self.replay_age_s


@dataclass(frozen=True)
class PrimaryPosition:
    in_recovery: bool
    lsn: int | None


async def is_in_recovery(pool: Any) -> bool:
    """Whether the server behind `pool` is a hot standby (read-only, no LISTEN)."""
    with translated():
        return bool(await pool.fetchval("SELECT pg_is_in_recovery()"))


async def standby_position(pool: Any) -> StandbyPosition:
    with translated():
        row = await pool.fetchrow(STANDBY_SQL)
    return StandbyPosition(
        in_recovery=bool(row["in_recovery"]),
        replay_lsn=lsn_number(row["replay_lsn"]),
        receive_lsn=lsn_number(row["receive_lsn"]),
        replay_age_s=row["replay_age_s"],
        receipt_age_s=row["receipt_age_s"],
    )


async def primary_position(pool: Any) -> PrimaryPosition:
    with translated():
        row = await pool.fetchrow(PRIMARY_SQL)
    return PrimaryPosition(bool(row["in_recovery"]), lsn_number(row["lsn"]))


def _away(exc: BaseException) -> DatabaseUnavailable | None:
    mapped = translate(exc)
    return mapped if isinstance(mapped, DatabaseUnavailable) else None


class ReadRoute:
    """Pool-shaped (fetch, fetchrow, fetchval, execute, acquire): reads go to the standby while
    it answers, else to the primary. A standby that cannot be reached is marked away (and
    `on_away` told) and the same call is made on the primary; `standby_back()` routes reads to
    the standby again once something has checked that it answers."""

    def __init__(
        self,
        standby: asyncpg.Pool,
        primary: asyncpg.Pool | None,
        on_away: Callable[[str], None] | None = None,
    ) -> None:
        self.standby = standby
        self.primary = primary
        self.standby_error: str | None = None
        self._on_away = on_away

    @property
    def on_standby(self) -> bool:
        return self.standby_error is None or self.primary is None

    def standby_away(self, error: str) -> None:
        changed = self.standby_error != error
        self.standby_error = error
        if changed and self._on_away is not None:
            self._on_away(error)

    def standby_back(self) -> None:
        self.standby_error = None

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.on_standby:
            try:
                return await getattr(self.standby, method)(*args, **kwargs)
            except Exception as exc:
                away = _away(exc)
                if away is None or self.primary is None:
                    raise
                self.standby_away(str(away))
        assert self.primary is not None
        return await getattr(self.primary, method)(*args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._call("fetch", query, *args, **kwargs)
        return result

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._call("fetchrow", query, *args, **kwargs)
        return row

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call("fetchval", query, *args, **kwargs)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        result: str = await self._call("execute", query, *args, **kwargs)
        return result

    @asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """A connection of the standby, or of the primary if the standby cannot give one."""
        pool = self.primary
        if self.on_standby:
            try:
                conn = await self.standby.acquire(timeout=timeout)
            except Exception as exc:
                away = _away(exc)
                if away is None or self.primary is None:
                    raise
                self.standby_away(str(away))
            else:
                try:
                    yield conn
                finally:
                    await self.standby.release(conn)
                return
        assert pool is not None
        async with pool.acquire(timeout=timeout) as conn:
            yield conn
