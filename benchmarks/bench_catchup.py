"""First-run catch-up: installing festmon on a festival database that already holds history (19.3).

Usage:
    # once: a template database with the reference payment schema and generated history
    python benchmarks/bench_catchup.py prepare --server postgresql://postgres@127.0.0.1:PORT \
        --template bench10m --cards 1000000 --log-rows 10000000 --scans 10000000
    # each measurement, on a fresh clone of the template
    python benchmarks/bench_catchup.py run --server postgresql://postgres@127.0.0.1:PORT \
        --template bench10m --pgbench /usr/lib/postgresql/15/bin/pgbench [--rate 500] \
        [--alone-seconds 30] [--json benchmarks/results/catchup-10m.json]

prepare: creates the template database, applies only the reference payment migrations
(migrations/payments: the tables and the detection indexes a festival already has), and loads
history with benchmarks/generate_festival.py. festmon itself is not installed in the template.

run, in one sitting:
  1. clones the template (CREATE DATABASE ... TEMPLATE), so every run starts from the same data;
  2. after a CHECKPOINT, pgbench pays alone at a fixed rate (--rate,
     benchmarks/pgbench_bar_order.sql: random cards) for --alone-seconds: payment latency
     p50 / p95 / p99 alone;
  3. installs festmon: `festmon db migrate` (migrate(), timed), initial_lookback anchored to 24
     hours before the newest generated row (as bench_detection.py does; read before step 2's
     payments add rows stamped now(), which made the lookback shrink as the template aged);
  4. after another CHECKPOINT, runs festmon's scheduler jobs as `festmon run --headless` does
     (scheduler.jobs.build_jobs and scheduler.runner.JobRunner under the breaker,
     DetectionRepository with the circuit timeout as statement timeout; critical every
     --critical-ms, medium every --medium-ms, a job that reports a backlog runs again at once)
     while pgbench keeps paying at the same rate, until
     every watermark of monitoring_catch_up_progress() is caught up (the card ledger's
     included) and both detection jobs have run: the time to catch up;
  5. reports the payment latency during the catch-up against alone, every job run's duration
     against its timeout, and the catch-up progress as seen every second (percent, ETA).

pgbench runs in chunks of --chunk-seconds (its per-transaction log is complete only when it
exits). Latency is the log's transaction time, which with --rate counts from the scheduled
start (a payment waiting for its client's previous one included); service time is that minus
the schedule lag (from the actual start). On a shared machine the first swings with the
clients' own CPU starvation, the second much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_chain_break_lag import bar_orders  # noqa: E402

from festmon_tui.db.connect import ConnectOptions, create_pool  # noqa: E402
from festmon_tui.db.detection import DetectionRepository  # noqa: E402
from festmon_tui.db.migrations import migrate  # noqa: E402
from festmon_tui.resources import migrations_dir  # noqa: E402
from festmon_tui.scheduler.breaker import BreakerConfig, CircuitBreaker  # noqa: E402
from festmon_tui.scheduler.jobs import build_jobs  # noqa: E402
from festmon_tui.scheduler.runner import JobRun, JobRunner  # noqa: E402
from festmon_tui.settings import load_settings  # noqa: E402

PROGRESS_SQL = "SELECT monitoring_catch_up_progress()"

# The server's WAL and checkpoint counters (PostgreSQL 14+), read at each window's ends. While a
# checkpoint runs, a page's first change writes a full-page image into the WAL, and the
# payments' commits wait on a bigger WAL flush: a checkpoint in one window and not the other
# shows up as festmon's cost. Each window starts right after a CHECKPOINT, so both begin from
# the same state; a checkpoint inside a window is reported.
WAL_SQL = """
SELECT w.wal_records, w.wal_fpi, w.wal_bytes::bigint AS wal_bytes,
       b.checkpoints_timed + b.checkpoints_req AS checkpoints
  FROM pg_stat_wal AS w, pg_stat_bgwriter AS b
"""


def _url(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def prepare(args: argparse.Namespace) -> None:
    import generate_festival

    admin = await asyncpg.connect(_url(args.server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{args.template}"')
        await admin.execute(f'CREATE DATABASE "{args.template}"')
    finally:
        await admin.close()
    # Only the payment set: a root whose monitoring folder is empty.
    root = Path(tempfile.mkdtemp(prefix="festmon-payments-only-"))
    try:
        (root / "payments").symlink_to(migrations_dir() / "payments")
        (root / "monitoring").mkdir()
        conn = await asyncpg.connect(_url(args.server, args.template))
        try:
            await migrate(conn, with_payment_schema=True, root=root)
        finally:
            await conn.close()
    finally:
        shutil.rmtree(root)
    await generate_festival.generate(
        _url(args.server, args.template), args.cards, args.log_rows, args.scans, args.anomalies
    )


class Payments:
    """pgbench at a fixed rate, in chunks, until stopped; every transaction's latency kept."""

    def __init__(self, args: argparse.Namespace, dsn: str, cards: int, workdir: Path) -> None:
        self.args = args
        self.dsn = dsn
        self.cards = cards
        self.workdir = workdir
        self.chunks = 0
        # (epoch seconds, latency ms, schedule lag ms) of every finished transaction
        self.samples: list[tuple[float, float, float]] = []
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._chunk()

    async def _chunk(self) -> None:
        self.chunks += 1
        prefix = self.workdir / f"chunk{self.chunks}"
        a = self.args
        options = {
            "-c": a.clients,
            "-j": a.clients,
            "-R": a.rate,
            "-T": a.chunk_seconds,
            "--log": None,
            "--log-prefix": prefix,
        }
        await bar_orders(a.pgbench, self.dsn, options, self.cards)
        for path in self.workdir.glob(f"chunk{self.chunks}.*"):
            for line in path.read_text().splitlines():
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                parts = line.split()
                if len(parts) < 6:
                    continue
                if parts[2] in ("failed", "skipped"):
                    self.failed += 1
                    continue
                lag = float(parts[6]) / 1000 if len(parts) > 6 else 0.0
                epoch = int(parts[4]) + int(parts[5]) / 1e6
                self.samples.append((epoch, float(parts[2]) / 1000, lag))
            path.unlink()

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Latency as pgbench logs it with --rate (from the scheduled start: waiting for the
        client's previous payment included) and the service time (from the actual start)."""
        inside = [(lat, lag) for t, lat, lag in self.samples if start <= t <= end]
        latencies = [lat for lat, _ in inside]
        service = [lat - lag for lat, lag in inside]
        seconds = max(end - start, 1e-9)
        doc: dict[str, Any] = {"payments": len(inside), "tps": round(len(inside) / seconds, 1)}
        for name, values in (("latency_ms", latencies), ("service_ms", service)):
            for q in (50, 95, 99):
                doc[f"{name}_p{q}"] = round(_percentile(values, q / 100), 3)
        doc["latency_ms_max"] = round(max(latencies, default=float("nan")), 3)
        return doc

    def by_jobs_running(
        self, jobs: list[tuple[float, float]], start: float, end: float
    ) -> dict[str, dict[str, Any]]:
        """The service time in [start, end] by how many detection jobs (critical, medium) were
        running when each payment finished: what festmon's concurrent work costs a payment."""
        groups: dict[str, list[float]] = {}
        for t, lat, lag in self.samples:
            if start <= t <= end:
                running = sum(1 for a, b in jobs if a <= t <= b)
                groups.setdefault(str(running), []).append(lat - lag)
        return {
            k: {
                "payments": len(v),
                "service_ms_p50": round(_percentile(v, 0.5), 3),
                "service_ms_p95": round(_percentile(v, 0.95), 3),
            }
            for k, v in sorted(groups.items())
        }


async def _payments_for(payments: Payments, seconds: float) -> tuple[float, float]:
    stop = asyncio.Event()
    task = asyncio.create_task(payments.run(stop))
    start = time.time()
    await asyncio.sleep(seconds)  # a fixed measurement window, not a wait for a state
    stop.set()
    await task
    return start, time.time()


async def _wal_counters(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(WAL_SQL)
    return dict(row) if row is not None else {}


def _wal_window(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, Any]:
    """WAL written per second and checkpoints begun between two readings of WAL_SQL."""
    diff = {k: after[k] - before[k] for k in before}
    seconds = max(seconds, 1e-9)
    return {
        "wal_mb_per_s": round(diff["wal_bytes"] / 1e6 / seconds, 2),
        "wal_fpi_per_s": round(diff["wal_fpi"] / seconds, 1),
        "wal_records_per_s": round(diff["wal_records"] / seconds, 1),
        "checkpoints": diff["checkpoints"],
    }


def _caught_up(progress: list[dict[str, Any]]) -> bool:
    return bool(progress) and all(p["caught_up"] for p in progress)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    clone = f"{args.template}_catchup"
    admin = await asyncpg.connect(_url(args.server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{clone}"')
        started = time.perf_counter()
        await admin.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{args.template}"')
        clone_s = time.perf_counter() - started
    finally:
        await admin.close()
    dsn = _url(args.server, clone)
    conn = await asyncpg.connect(dsn)
    results: dict[str, Any] = {
        "template": args.template,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "load_average_start": os.getloadavg(),
        "clone_s": round(clone_s, 1),
        "rate": args.rate,
        "clients": args.clients,
    }
    workdir = Path(tempfile.mkdtemp(prefix="festmon-catchup-"))
    try:
        results["server"] = await conn.fetchval("SHOW server_version")
        results["shared_buffers"] = await conn.fetchval("SHOW shared_buffers")
        results["log_rows"] = await conn.fetchval("SELECT count(*) FROM app_transaction_log")
        results["cards"] = cards = await conn.fetchval("SELECT count(*) FROM table_cards")
        # The newest generated row, read before the payments below add rows stamped now(): the
        # lookback is anchored to it, so it covers the same history in every sitting.
        newest = await conn.fetchval('SELECT max("timestamp") FROM app_transaction_log')
        results["lookback_rows"] = await conn.fetchval(
            "SELECT count(*) FROM app_transaction_log"
            " WHERE \"timestamp\" > $1::timestamptz - interval '24 hours'",
            newest,
        )
        # Warm the payment path once, so "alone" and "during" start from the same cache.
        await conn.execute("SELECT count(*) FROM table_cards")
        payments = Payments(args, dsn, cards, workdir)

        await conn.execute("CHECKPOINT")  # the clone's WAL would start one in a window
        wal_before = await _wal_counters(conn)
        start, end = await _payments_for(payments, args.alone_seconds)
        results["alone"] = payments.window(start + 1, end)
        results["alone"]["wal"] = _wal_window(wal_before, await _wal_counters(conn), end - start)
        print(f"alone: {results['alone']}", flush=True)

        started = time.perf_counter()
        await migrate(conn, with_payment_schema=True)
        results["migrate_s"] = round(time.perf_counter() - started, 2)
        await conn.execute(
            "UPDATE monitoring_settings"
            " SET initial_lookback = now() - $1::timestamptz + interval '24 hours'",
            newest,
        )
        print(f"migrate: {results['migrate_s']} s", flush=True)

        settings = load_settings(
            {
                "database_url": dsn,
                "monitoring_interval_critical": args.critical_ms,
                "monitoring_interval_medium": args.medium_ms,
            },
            env_file=None,
        )
        timeout_ms = settings.monitoring_circuit_timeout_ms
        options = ConnectOptions.from_settings(settings, dsn)
        pool = await create_pool(options, min_size=1, max_size=6)
        breaker = CircuitBreaker(
            "bench",
            BreakerConfig(
                settings.monitoring_circuit_failure_threshold,
                settings.monitoring_circuit_recovery_timeout_ms,
                settings.monitoring_circuit_half_open_max_calls,
                timeout_ms,
            ),
        )
        runs: list[JobRun] = []
        runner = JobRunner(
            build_jobs(settings, DetectionRepository(pool, timeout_ms=timeout_ms)),
            breaker,
            on_run=runs.append,
        )
        stop = asyncio.Event()
        await conn.execute("CHECKPOINT")  # as before the payments alone
        wal_before = await _wal_counters(conn)
        pay_task = asyncio.create_task(payments.run(stop))
        catch_up_start = time.time()
        jobs_task = asyncio.create_task(runner.run(None))
        timeline: list[dict[str, Any]] = []
        done_at: float | None = None
        try:
            while time.time() - catch_up_start < args.max_seconds:
                raw = await conn.fetchval(PROGRESS_SQL)
                progress = json.loads(raw)
                ran = {r.name for r in runs if r.success}
                elapsed = time.time() - catch_up_start
                slowest = min(progress, key=lambda p: p["percent_done"], default=None)
                timeline.append(
                    {
                        "t": round(elapsed, 1),
                        "slowest": slowest and slowest["detector"],
                        "percent": slowest and slowest["percent_done"],
                        "eta_s": slowest and slowest["eta_seconds"],
                    }
                )
                if _caught_up(progress) and {"critical", "medium"} <= ran:
                    done_at = time.time()
                    break
                if jobs_task.done():
                    jobs_task.result()
                await asyncio.sleep(args.poll_seconds)  # the progress sampling period
        finally:
            jobs_task.cancel()
            await asyncio.gather(jobs_task, return_exceptions=True)
            stop.set()
            await pay_task
            await pool.close()
        if done_at is None:
            results["caught_up_s"] = None
            print(f"NOT caught up after {args.max_seconds} s", flush=True)
            done_at = time.time()
        else:
            results["caught_up_s"] = round(done_at - catch_up_start, 1)
        results["during"] = payments.window(catch_up_start, done_at)
        results["during"]["wal"] = _wal_window(
            wal_before, await _wal_counters(conn), time.time() - catch_up_start
        )
        for name in ("latency_ms", "service_ms"):
            results[f"{name}_p95_ratio"] = round(
                results["during"][f"{name}_p95"] / results["alone"][f"{name}_p95"], 2
            )
        results["during_by_jobs"] = payments.by_jobs_running(
            [
                (r.started_at.timestamp(), r.started_at.timestamp() + r.duration_ms / 1000)
                for r in runs
                if r.name in ("critical", "medium")
            ],
            catch_up_start,
            done_at,
        )
        results["payment_failures"] = payments.failed
        results["job_timeout_ms"] = timeout_ms
        results["job_runs"] = [
            {
                "job": r.name,
                "t": round(r.started_at.timestamp() - catch_up_start, 1),
                "ms": r.duration_ms,
                "success": r.success,
                "result": r.result[:160],
            }
            for r in runs
        ]
        by_job: dict[str, list[int]] = {}
        for r in runs:
            by_job.setdefault(r.name, []).append(r.duration_ms)
        results["jobs"] = {
            name: {
                "runs": len(ms),
                "max_ms": max(ms),
                "median_ms": sorted(ms)[len(ms) // 2],
                "over_timeout": sum(1 for m in ms if m > timeout_ms),
            }
            for name, ms in by_job.items()
        }
        results["failed_runs"] = sum(1 for r in runs if not r.success)
        results["timeline"] = timeline
        results["progress_end"] = json.loads(await conn.fetchval(PROGRESS_SQL))
        results["load_average_end"] = os.getloadavg()
    finally:
        await conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            admin = await asyncpg.connect(_url(args.server, "postgres"))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)')
            finally:
                await admin.close()
    return results


def _report(results: dict[str, Any]) -> None:
    print(
        f"{results['template']}: {results['log_rows']} log rows, {results['cards']} cards, "
        f"PostgreSQL {results['server']}, shared_buffers {results['shared_buffers']}"
    )
    print(
        f"install (db migrate): {results['migrate_s']} s; log rows in the 24 h lookback: "
        f"{results.get('lookback_rows')}"
    )
    print(f"caught up (every watermark at the head, ledger built): {results['caught_up_s']} s")
    alone, during = results["alone"], results["during"]
    for label, w in (("payments alone: ", alone), ("during catch-up:", during)):
        print(
            f"{label} {w['tps']} tps; latency p50 / p95 / p99 {w['latency_ms_p50']} / "
            f"{w['latency_ms_p95']} / {w['latency_ms_p99']} ms; service time "
            f"{w['service_ms_p50']} / {w['service_ms_p95']} / {w['service_ms_p99']} ms"
        )
    for label, w in (("WAL alone:", alone), ("WAL during:", during)):
        wal = w.get("wal", {})
        print(
            f"{label} {wal.get('wal_mb_per_s')} MB/s, {wal.get('wal_fpi_per_s')} full-page "
            f"images/s, checkpoints begun {wal.get('checkpoints')}"
        )
    for running, w in results.get("during_by_jobs", {}).items():
        print(
            f"  with {running} detection job(s) running: {w['payments']} payments, service "
            f"time p50 / p95 {w['service_ms_p50']} / {w['service_ms_p95']} ms"
        )
    print(
        f"p95 during / alone: latency ×{results['latency_ms_p95_ratio']}, "
        f"service time ×{results['service_ms_p95_ratio']}"
    )
    for name, job in results["jobs"].items():
        print(
            f"  {name:8s} runs {job['runs']:4d}  median {job['median_ms']} ms  "
            f"max {job['max_ms']} ms  over the {results['job_timeout_ms']} ms timeout: "
            f"{job['over_timeout']}"
        )
    print(f"failed job runs: {results['failed_runs']}; load average {results['load_average_end']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="create the template database")
    prep.add_argument("--server", required=True, help="postgresql://user@host:port (no db)")
    prep.add_argument("--template", required=True)
    prep.add_argument("--cards", type=int, default=100_000)
    prep.add_argument("--log-rows", type=int, default=1_000_000)
    prep.add_argument("--scans", type=int, default=1_000_000)
    prep.add_argument("--anomalies", type=int, default=5)
    go = sub.add_parser("run", help="measure a first run on a clone of the template")
    go.add_argument("--server", required=True, help="postgresql://user@host:port (no db)")
    go.add_argument("--template", required=True)
    go.add_argument("--pgbench", default="pgbench")
    go.add_argument("--rate", type=int, default=500, help="payments per second (pgbench -R)")
    go.add_argument("--clients", type=int, default=2)
    go.add_argument("--alone-seconds", type=float, default=30)
    go.add_argument("--chunk-seconds", type=int, default=5)
    go.add_argument("--critical-ms", type=int, default=2000)
    go.add_argument("--medium-ms", type=int, default=120_000)
    go.add_argument("--max-seconds", type=float, default=900)
    go.add_argument("--poll-seconds", type=float, default=1.0)
    go.add_argument("--keep", action="store_true", help="keep the clone")
    go.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if args.command == "prepare":
        asyncio.run(prepare(args))
        return
    results = asyncio.run(run(args))
    _report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
