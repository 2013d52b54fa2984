"""balance_chain_break's time per critical run against how far the card ledger lags (issue 19).

Usage:
    python benchmarks/bench_chain_break_lag.py --dsn old=postgresql://.../a \
        --dsn new=postgresql://.../b --pgbench .../pgbench [--lags 0,4000,8000] \
        [--batch 650] [--rounds 3]

The chain-break rule takes a card's first new row's predecessor from the card ledger plus the
card's rows the ledger has not folded yet; the ledger is folded by the medium job (and by the
critical job once it lags by 20 000 log ids), so in steady traffic it lags by 0 to ~20 000
ids. For each lag (in payments: about two log rows each) and round, on each database in turn
(the order alternates by round): a medium job (the fold: no lag), that many payments through
pgbench, a critical job (it judges them), then --batch payments and one critical job whose
balance_chain_break duration_ms is recorded. Each database is caught up first. Prints the
median per database and lag, and the ratio to the first database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent


async def bar_orders(path: str, dsn: str, options: dict[str, object | None], cards: int) -> None:
    """pgbench paying bar orders (pgbench_bar_order.sql) from random cards of the first
    `cards`, with these pgbench options (None: a flag); its output is the error if it fails."""
    command = [path, "-n", "-M", "prepared", "-f", str(HERE / "pgbench_bar_order.sql")]
    for option, value in options.items():
        command += [option] if value is None else [option, str(value)]
    command += ["-D", f"cards={cards}", "-D", f"run={time.time_ns()}", dsn]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PGAPPNAME": "pgbench"},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{out.decode()}")


async def pgbench(path: str, dsn: str, payments: int, cards: int) -> None:
    if payments > 0:
        await bar_orders(path, dsn, {"-c": 2, "-j": 2, "-t": max(1, payments // 2)}, cards)


async def catch_up(conn: asyncpg.Connection) -> None:
    for _ in range(500):
        critical = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(5000)"))
        medium = json.loads(await conn.fetchval("SELECT run_medium_detection_batches(5000, false)"))
        if not critical["backlog"] and not medium["backlog"]:
            return
    raise SystemExit("no catch-up after 500 rounds")


async def one(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace, lag: int) -> float:
    cards = await conn.fetchval("SELECT count(*) FROM table_cards")
    await conn.fetchval("SELECT run_medium_detection_batches(5000, false)")
    await pgbench(args.pgbench, dsn, lag, cards)
    await conn.fetchval("SELECT run_critical_detection_batches(5000)")
    await pgbench(args.pgbench, dsn, args.batch, cards)
    result = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(5000)"))
    return float(result["rules"]["balance_chain_break"]["duration_ms"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", action="append", required=True, help="LABEL=DSN, twice or more")
    parser.add_argument("--pgbench", default="pgbench")
    parser.add_argument("--lags", default="0,4000,8000", help="payments not folded, per point")
    parser.add_argument("--batch", type=int, default=650, help="payments per measured run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    targets = [tuple(d.split("=", 1)) for d in args.dsn]
    conns = {label: await asyncpg.connect(dsn) for label, dsn in targets}
    for conn in conns.values():
        await conn.execute("SET application_name = 'festmon'")
        await catch_up(conn)
    print(f"load average {os.getloadavg()[0]:.2f}; batch {args.batch} payments")
    times: dict[tuple[str, int], list[float]] = {}
    for lag in (int(x) for x in args.lags.split(",")):
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else targets[::-1]
            for label, dsn in order:
                ms = await one(conns[label], dsn, args, lag)
                times.setdefault((label, lag), []).append(ms)
        base = statistics.median(times[(targets[0][0], lag)])
        for label, _ in targets:
            med = statistics.median(times[(label, lag)])
            runs = ", ".join(f"{t:.1f}" for t in times[(label, lag)])
            print(
                f"lag {lag:6d} payments  {label:8s} chain break median {med:7.1f} ms "
                f"({runs})  ratio {med / base:.2f}"
            )
    print(f"load average {os.getloadavg()[0]:.2f}")
    for conn in conns.values():
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
