"""How far each detection watermark is behind the payment tables (issue 19.3).

A first run on a database that already holds months of payments catches up for a while; this
reads the database's own account of it (`monitoring_catch_up_progress()`), so that
`festmon status` and the dashboard show rows behind, percent done and time left instead of
looking hung.
"""

from __future__ import annotations

import json

import asyncpg

from festmon_tui.db.errors import DatabaseRefused, translated
from festmon_tui.models import CatchUp

CATCH_UP_SQL = "SELECT monitoring_catch_up_progress()"

__all__ = ["CATCH_UP_SQL", "CatchUp", "CatchUpRepository", "fetch_catch_up"]


async def fetch_catch_up(conn: asyncpg.Connection | asyncpg.Pool) -> list[CatchUp]:
    """Every watermark's progress, ordered by name."""
    raw = await conn.fetchval(CATCH_UP_SQL)
    return [
        CatchUp(
            detector=str(item["detector"]),
            rows_behind=int(item["rows_behind"]),
            percent_done=float(item["percent_done"]),
            eta_seconds=None if item["eta_seconds"] is None else float(item["eta_seconds"]),
            caught_up=bool(item["caught_up"]),
        )
        for item in json.loads(raw)
    ]


class CatchUpRepository:
    """The progress for the service's state: one cheap call (a row per watermark, index ends)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def read(self) -> tuple[CatchUp, ...]:
        """The progress; empty when this schema or role cannot tell (older schema, rights)."""
        try:
            with translated():
                return tuple(await fetch_catch_up(self.pool))
        except DatabaseRefused:
            return ()
