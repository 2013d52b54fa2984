"""Plain helpers of the database tests (fixtures stay in conftest.py, helpers live here)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

BARRIER = {"barrier": True}


async def notified_before_barrier(
    sender: asyncpg.Connection, channel: str, received: asyncio.Queue[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What else arrived on `channel` before a barrier notice sent now through `sender`.

    PostgreSQL delivers notices of different transactions in commit order, so once the barrier
    is in, every notice of an earlier commit is in too: an empty list proves that nothing more
    was sent, without waiting an arbitrary time for a notice that should not come.
    """
    await sender.execute("SELECT pg_notify($1, $2)", channel, json.dumps(BARRIER))
    before: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while (payload := await received.get()) != BARRIER:
            before.append(payload)
    return before
