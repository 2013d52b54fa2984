"""Headless schedulers in separate processes: SIGKILL the leader, another takes over in time."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

CRITICAL_MS = 2000
TTL_MS = 900
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Runner:
    """One `festmon run --headless` subprocess and its stderr lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid


async def start_runner(dsn: str, workdir: Path) -> Runner:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless",
        "--database-url", dsn,
        "--monitoring-interval-critical", str(CRITICAL_MS),
        "--monitoring-interval-medium", "600000",
        "--monitoring-interval-health", "600000",
        "--monitoring-interval-cleanup", "3600000",
        "--monitoring-lease-ttl-ms", str(TTL_MS),
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Runner(proc)


@pytest.fixture
async def runners(db_dsn: str, tmp_path: Path) -> AsyncIterator[list[Runner]]:
    group = [await start_runner(db_dsn, tmp_path) for _ in range(3)]
    yield group
    for runner in group:
        if runner.proc.returncode is None:
            runner.proc.send_signal(signal.SIGTERM)
    for runner in group:
        try:
            async with asyncio.timeout(5):
                await runner.proc.wait()
        except TimeoutError:
            runner.proc.kill()
            await runner.proc.wait()


async def inject_failed_deductions(conn: asyncpg.Connection, tag: str, count: int) -> None:
    """Failed payments that still took money: one CRITICAL event each, exactly once."""
    await conn.executemany(
        "INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,"
        " previous_balance, new_balance) VALUES ($1, 'bar_order', 'failed', 10, 50, 40)",
        [(f"{tag}-{i}",) for i in range(count)],
    )


async def lease_holder(conn: asyncpg.Connection) -> tuple[int | None, int]:
    row = await conn.fetchrow(
        "SELECT holder_pid, term FROM monitoring_scheduler_lease"
        " WHERE expires_at > clock_timestamp()"
    )
    return (None, 0) if row is None else (row["holder_pid"], row["term"])


async def critical_runs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT holder_pid, (result ->> 'term')::bigint AS term, started_at, finished_at,"
        " extract(epoch FROM started_at) AS started_epoch"
        " FROM monitoring_cycle_runs WHERE kind = 'critical' ORDER BY started_at"
    )


async def test_a_killed_leader_is_replaced_within_one_interval_without_overlap_or_duplicates(
    runners: list[Runner], conn: asyncpg.Connection
) -> None:
    await inject_failed_deductions(conn, "BEFORE", 5)
    await until(lambda: _any_term(conn), 20)
    old_pid, old_term = await lease_holder(conn)
    (leader,) = [r for r in runners if r.pid == old_pid]

    await inject_failed_deductions(conn, "DURING", 5)
    leader.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    await leader.proc.wait()

    async with asyncio.timeout(10):
        while True:
            newer = [r for r in await critical_runs(conn) if (r["term"] or 0) > old_term]
            if newer:
                break
            await asyncio.sleep(0.02)
    took_over_s = float(newer[0]["started_epoch"]) - killed_at
    assert took_over_s <= CRITICAL_MS / 1000, f"first critical run {took_over_s:.2f} s after kill"
    assert newer[0]["holder_pid"] != old_pid

    await inject_failed_deductions(conn, "AFTER", 5)
    query = (
        "SELECT count(*) FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_deduction_on_failure'"
    )
    await until(lambda: _count_is(conn, query, 15), 15)

    # Exactly once: one event per failed transaction, never two for one fingerprint.
    assert await conn.fetchval(query) == 15
    assert not await conn.fetch(
        "SELECT fingerprint FROM monitoring_events GROUP BY detection_algorithm, fingerprint"
        " HAVING count(*) > 1"
    )
    # Never two leaders: every run of a term ended before the next term's first run began.
    runs = [r for r in await critical_runs(conn) if r["term"] is not None]
    terms = sorted({r["term"] for r in runs})
    for earlier, later in itertools.pairwise(terms):
        last_end = max(r["finished_at"] for r in runs if r["term"] == earlier)
        first_start = min(r["started_at"] for r in runs if r["term"] == later)
        assert last_end <= first_start, f"term {earlier} overlapped term {later}"
    assert all(len({r["holder_pid"] for r in runs if r["term"] == t}) == 1 for t in terms)
    acquired = [line for r in runners for line in r.lines if "acquired term" in line]
    assert len(acquired) == len(terms), acquired


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)


async def _any_term(conn: asyncpg.Connection) -> bool:
    return any(r["term"] for r in await critical_runs(conn))


async def _count_is(conn: asyncpg.Connection, query: str, count: int) -> bool:
    return bool(await conn.fetchval(query) >= count)
