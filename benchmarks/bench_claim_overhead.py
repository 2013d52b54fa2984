"""Issue 13.3/13.4 overhead: the critical job before and after, on identical data, interleaved.

Usage:
    python benchmarks/bench_claim_overhead.py [--before main] [--history 200000] [--rounds 30]

Starts its own embedded PostgreSQL in a temp dir and creates two databases with the same
history (log rows and NFC scans in id order = time order, the usual case, spread over the last
30 hours): "before" migrated with the migrations of git ref --before, "after" with the working
tree's (V0012 first-run scope, V0013 failing-rule record). Then:
  1. the first run: run_critical_detection() until no backlog (the 24 h lookback), timed;
  2. --rounds rounds, the two databases alternating (which goes first alternates too): --rows
     new log rows and as many scans, then one run_critical_detection() timed; then one call with
     no new rows (the fixed cost of a run: claims, and now the failing-rule record's probe).
Prints medians and p95 (ms) and after / before ratios, with the load average before and after.
The first runs are not interleaved (one database after the other): compare the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from festmon_tui.db.embedded import EmbeddedServer
from festmon_tui.db.migrations import migrate

REPO = Path(__file__).resolve().parents[1]

HISTORY_SQL = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 previous_balance, new_balance, "timestamp")
SELECT 'card-' || (g % 5000), 'bar_order', CASE WHEN g % 97 = 0 THEN 'failed' ELSE 'completed' END,
       5.00, 100.00, 95.00, now() - interval '30 hours' * (1 - g::float8 / $1::int)
  FROM generate_series(1, $1::int) AS g;
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp)
SELECT 'card-' || (g % 5000), now() - interval '30 hours' * (1 - g::float8 / $1::int)
  FROM generate_series(1, $1::int / 2) AS g;
"""

NEW_ROWS_SQL = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 previous_balance, new_balance, "timestamp")
SELECT 'new-' || (g % 700), 'bar_order', 'completed', 5.00, 100.00, 95.00, clock_timestamp()
  FROM generate_series(1, $1::int) AS g;
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp)
SELECT 'new-' || (g % 700), clock_timestamp() - interval '1 minute'
  FROM generate_series(1, $1::int) AS g;
"""


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _migrations_of(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "migrations"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "migrations"


async def _prepare(dsn: str, root: Path | None, history: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, with_payment_schema=True, root=root)
        # a simple statement per row count: the two INSERTs take the same parameter
        for statement in HISTORY_SQL.strip().split(";\n"):
            if statement.strip():
                await conn.execute(statement, history)
        await conn.execute("ANALYZE")
        started = time.perf_counter()
        for _ in range(1000):
            result = await conn.fetchval("SELECT run_critical_detection()::jsonb ->> 'backlog'")
            if result != "true":
                break
        return (time.perf_counter() - started) * 1000
    finally:
        await conn.close()


async def _round(conn: asyncpg.Connection, rows: int) -> tuple[float, float]:
    for statement in NEW_ROWS_SQL.strip().split(";\n"):
        if statement.strip():
            await conn.execute(statement, rows)
    started = time.perf_counter()
    await conn.fetchval("SELECT run_critical_detection()")
    with_rows = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    await conn.fetchval("SELECT run_critical_detection()")
    empty = (time.perf_counter() - started) * 1000
    return with_rows, empty


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.2f} ms  p95 {p95:7.2f} ms"


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="festmon-bench-claim-"))
    server = EmbeddedServer(workdir / "pgdata")
    dsn = await asyncio.to_thread(server.start)
    try:
        admin = await asyncpg.connect(dsn)
        try:
            for name in ("bench_before", "bench_after"):
                await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        parts = urlsplit(dsn)
        dsns = {
            label: urlunsplit(parts._replace(path=f"/bench_{label}"))
            for label in ("before", "after")
        }
        old = _migrations_of(args.before, workdir / "before")
        print(f"load average at start: {_loadavg()}")
        first = {
            "before": await _prepare(dsns["before"], old, args.history),
            "after": await _prepare(dsns["after"], None, args.history),
        }
        for label, ms in first.items():
            print(f"first run (24 h lookback of {args.history} log rows) {label:6}: {ms:8.1f} ms")
        conns = {label: await asyncpg.connect(d) for label, d in dsns.items()}
        timings: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in conns}
        try:
            for i in range(args.rounds):
                order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
                for label in order:
                    with_rows, empty = await _round(conns[label], args.rows)
                    timings[label][0].append(with_rows)
                    timings[label][1].append(empty)
        finally:
            for conn in conns.values():
                await conn.close()
        kinds = ((f"critical job, {args.rows} new rows + scans", 0), ("critical job, empty", 1))
        for kind, index in kinds:
            for label in ("before", "after"):
                print(f"{kind:38} {label:6}: {_stats(timings[label][index])}")
            ratio = statistics.median(timings["after"][index]) / statistics.median(
                timings["before"][index]
            )
            print(f"{kind:38} after / before = {ratio:.2f}")
        print(f"load average at end: {_loadavg()}")
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref of the old migrations")
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
