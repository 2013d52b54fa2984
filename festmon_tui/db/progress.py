"""How far each detection watermark is behind the payment tables (issue 19.3).

A first run on a database that already holds months of payments catches up for a while; this
reads the database's own account of it (`monitoring_catch_up_progress()`), so that
`festmon status` shows rows behind, percent done and time left instead of looking hung.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

CATCH_UP_SQL = "SELECT monitoring_catch_up_progress()"


@dataclass(frozen=True, slots=True)
class CatchUp:
    """One watermark: an incremental rule, or the card ledger."""

    detector: str
    rows_behind: int
    percent_done: float
    eta_seconds: float | None
    caught_up: bool


async def fetch_catch_up(conn: asyncpg.Connection) -> list[CatchUp]:
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
