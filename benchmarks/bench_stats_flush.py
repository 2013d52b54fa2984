"""When another backend's UPDATE shows in PostgreSQL's statistics (issue 19.5, the early sweep).

Usage:
    python benchmarks/bench_stats_flush.py --dsn postgresql://.../db

The critical job's balance signal (migrations/monitoring/R__monitoring_03_balance_signal.sql)
reads pg_stat_get_tuples_updated of table_cards, which a backend publishes when a transaction
ends or it goes idle, at most once a second. This measures, on a scratch table of its own
(`festmon_bench_stats_flush`, dropped at the end), how long an UPDATE takes to become visible
to another connection: a new connection's first write, a write right after the previous one
became visible (less than a second after the writer's flush; the writer then idle: expected
the backend's idle timer, 10 s on PostgreSQL 15 and later), a write after a quiet second
(expected: at once), twice over. Prints the server version and each delay.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

TABLE = "festmon_bench_stats_flush"
STAT = f"SELECT pg_stat_get_tuples_updated('{TABLE}'::regclass)"
WRITE = f"UPDATE {TABLE} SET n = n + 1"


async def visible_after(watch: asyncpg.Connection, seen: int, limit_s: float = 70.0) -> float:
    """Seconds until the statistics count more than `seen` updates (polled every 2 ms)."""
    started = time.monotonic()
    async with asyncio.timeout(limit_s):
        while True:
            if await watch.fetchval(STAT) > seen:
                return time.monotonic() - started
            await asyncio.sleep(0.002)


async def write(writer: asyncpg.Connection, watch: asyncpg.Connection) -> float:
    seen = await watch.fetchval(STAT)
    await writer.execute(WRITE)
    return await visible_after(watch, seen)


async def cases(dsn: str, watch: asyncpg.Connection) -> list[tuple[str, float]]:
    """A writer's writes, each waited for until visible, and the delay of each."""
    writer = await asyncpg.connect(dsn)
    try:
        first = await write(writer, watch)
        right_after = await write(writer, watch)  # within a second of the previous flush
        await asyncio.sleep(1.2)
        quiet = await write(writer, watch)
        again = await write(writer, watch)
    finally:
        await writer.close()
    return [
        ("first write of a new connection", first),
        ("write right after the previous one became visible", right_after),
        ("write after a quiet second", quiet),
        ("write right after that one became visible", again),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()

    watch = await asyncpg.connect(args.dsn)
    try:
        await watch.execute(
            f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (n bigint);"
            f" INSERT INTO {TABLE} VALUES (0)"
        )
        print(f"PostgreSQL {await watch.fetchval('SHOW server_version')}")
        for _ in range(2):
            for case, delay in await cases(args.dsn, watch):
                print(f"  {case}: visible after {delay:.3f} s")
    finally:
        await watch.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await watch.close()


if __name__ == "__main__":
    asyncio.run(main())
