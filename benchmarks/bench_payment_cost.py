"""festmon's database time per payment, from pg_stat_statements (issue 19).

Usage:
    python benchmarks/bench_payment_cost.py --dsn postgresql://.../db --seconds 60 \
        --pgbench .../pgbench [--clients 2] [--critical-ms 2000] [--medium-ms 30000] [--rate N]

The server must load pg_stat_statements (`shared_preload_libraries`, `track = all` for the
per-statement profile). The database: a clone of a generated festival
(benchmarks/generate_festival.py) with both migration sets applied by the code under test.

What it does: catches up once (critical job, then medium job, again while either reports a
backlog: what the scheduler does on a first run; the time is reported), resets
pg_stat_statements, then runs pgbench (benchmarks/pgbench_bar_order.sql: bar orders on random
cards) for --seconds while it calls the scheduler's two job functions itself on the scheduler's
intervals (run_critical_detection_batches(budget) every --critical-ms,
run_medium_detection_batches(budget, false) every --medium-ms). The job functions are called by
name only, so the same script measures any version of the detection SQL.

Prints: payments (pgbench transactions), each job's calls and database time (top-level
statement time), that time per payment in µs, and the fifteen costliest nested statements of the
jobs (calls, total ms, µs per payment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
CRITICAL = "SELECT run_critical_detection_batches($1::integer)"
MEDIUM = "SELECT run_medium_detection_batches($1::integer, $2::boolean)"


async def catch_up(conn: asyncpg.Connection) -> tuple[float, int]:
    started = time.perf_counter()
    runs = 0
    while True:
        runs += 1
        critical = json.loads(await conn.fetchval(CRITICAL, 5000))
        medium = json.loads(await conn.fetchval(MEDIUM, 5000, False))
        if not critical["backlog"] and not medium["backlog"] and runs > 1:
            return time.perf_counter() - started, runs
        if runs > 500:
            raise SystemExit("no catch-up after 500 rounds")


async def jobs(conn: asyncpg.Connection, stop: asyncio.Event, critical_ms: int, medium_ms: int):
    next_medium = time.monotonic() + medium_ms / 1000
    durations: dict[str, list[float]] = {"critical": [], "medium": []}
    while not stop.is_set():
        tick = time.monotonic()
        await conn.fetchval(CRITICAL, critical_ms // 2)
        durations["critical"].append(time.monotonic() - tick)
        if time.monotonic() >= next_medium:
            tick = time.monotonic()
            await conn.fetchval(MEDIUM, medium_ms // 2, False)
            durations["medium"].append(time.monotonic() - tick)
            next_medium += medium_ms / 1000
        try:
            await asyncio.wait_for(
                stop.wait(), max(0.0, critical_ms / 1000 - (time.monotonic() - tick))
            )
        except TimeoutError:
            pass
    return durations


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--pgbench", default="pgbench")
    parser.add_argument("--critical-ms", type=int, default=2000)
    parser.add_argument("--medium-ms", type=int, default=30000)
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="payments per second (pgbench -R; 0: as fast as the server goes). A fixed rate "
        "gives both versions the same batches: per-call costs spread over the same payments",
    )
    args = parser.parse_args()

    conn = await asyncpg.connect(args.dsn)
    await conn.execute("SET application_name = 'festmon'")
    took, runs = await catch_up(conn)
    print(f"catch-up: {took:.1f} s in {runs} rounds of critical + medium")
    await conn.execute("CHECKPOINT")
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await conn.execute("SELECT pg_stat_statements_reset()")
    cards = await conn.fetchval("SELECT count(*) FROM table_cards")
    dbid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")

    stop = asyncio.Event()
    job_task = asyncio.create_task(jobs(conn, stop, args.critical_ms, args.medium_ms))
    bench = await asyncio.create_subprocess_exec(
        args.pgbench,
        "-n",
        "-M",
        "prepared",
        "-c",
        str(args.clients),
        "-j",
        str(args.clients),
        "-T",
        str(args.seconds),
        *(["-R", str(args.rate)] if args.rate else []),
        "-f",
        str(HERE / "pgbench_bar_order.sql"),
        "-D",
        f"cards={cards}",
        "-D",
        f"run={int(time.time())}",
        args.dsn,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PGAPPNAME": "pgbench"},
    )
    out, _ = await bench.communicate()
    stop.set()
    durations = await job_task
    text = out.decode()
    match = re.search(r"number of transactions actually processed: (\d+)", text)
    if match is None:
        raise SystemExit(f"pgbench failed:\n{text}")
    payments = int(match.group(1))
    tps = re.search(r"tps = ([\d.]+)", text)
    print(
        f"payments: {payments} in {args.seconds} s ({tps.group(1) if tps else '?'} tps), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = await conn.fetch(
        """
        SELECT query, calls, total_exec_time FROM pg_stat_statements
         WHERE dbid = $1 AND toplevel
           AND (query LIKE 'SELECT run_critical_detection_batches%'
                OR query LIKE 'SELECT run_medium_detection_batches%')
        """,
        dbid,
    )
    total = 0.0
    for r in rows:
        name = "critical" if "critical" in r["query"] else "medium"
        total += r["total_exec_time"]
        times = sorted(durations[name])
        median = times[len(times) // 2] * 1000 if times else float("nan")
        print(
            f"{name:8s} calls {r['calls']:4d}  db time {r['total_exec_time']:9.1f} ms  "
            f"{1000 * r['total_exec_time'] / payments:6.1f} µs/payment  "
            f"(median call {median:.0f} ms)"
        )
    print(f"festmon jobs: {1000 * total / payments:.1f} µs of database time per payment")
    profile = await conn.fetch(
        """
        SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS q, calls, total_exec_time
          FROM pg_stat_statements
         WHERE dbid = $1 AND NOT toplevel
         ORDER BY total_exec_time DESC LIMIT 15
        """,
        dbid,
    )
    print("costliest nested statements (the payment procedure's own statements included):")
    for r in profile:
        print(
            f"  {r['calls']:6d} calls {r['total_exec_time']:9.1f} ms "
            f"{1000 * r['total_exec_time'] / payments:6.1f} µs/payment  {r['q']}"
        )
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
