"""How long a dropped SSH session takes to stop festmon and its embedded server (issue 6, point 6).

Usage:
    python benchmarks/bench_hangup.py [--scenario warm|e2e] [--rounds 5] [--warm-up 180]
        [--rate 50] [--verbose] [--variant NAME=REPO_DIR ...]
        [--json benchmarks/results/hangup-<UTC time>.json]

Each round runs `festmon demo` in a tmux session on its own tmux server, at 120x40, with its own
embedded server in a temporary MONITORING_DATA_DIR, then kills the tmux session (the terminal
hangs up: SIGHUP). Scenarios:

* warm: `festmon demo --rate <rate>` (50 payments/s = 10x the default); once the dashboard is
  live the festival runs --warm-up seconds (the server's shared buffers get dirty);
* e2e: tests/e2e/test_demo_in_tmux.py's dropped session: its demo command, hung up as soon as
  a CRITICAL event is on screen (~15 s after the start: the new demo database not yet
  checkpointed).

From the hang-up it measures:

* festmon_s: until the festmon process is gone;
* stop_request_s: until the server logged "received fast shutdown request";
* postmaster_s: until the postmaster is gone (the bound is 2 s, SPEC section 8);
* from the server log: the shutdown checkpoint's buffers written and its write/sync/total times,
  and the time from the stop request to "database system is shut down".

With several --variant NAME=REPO_DIR (e.g. an unpacked `git archive` of an older commit), rounds
alternate between them (A B A B ...), so that every variant sees the same machine load; each
round runs `python -m festmon_tui` from that directory. Records `uptime`'s load average before
each hang-up. The server log and (with --verbose, festmon -v) the dashboard's debug log of every
round are kept next to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
LIVE = re.compile(r"connected \(live\)")
CRITICAL_ROW = re.compile(r"^ CRITICAL +\d+ ", re.MULTILINE)  # as tests/e2e/test_demo_in_tmux.py
# The scenarios: `warm` lets the festival run at 10x for --warm-up seconds (shared buffers
# dirty after minutes of writes); `e2e` is tests/e2e/test_demo_in_tmux.py's dropped session:
# its demo command, hung up as soon as a CRITICAL event is on screen (~15 s after the start,
# the new demo database and its history not yet checkpointed).
E2E_DEMO = "--cards 300 --anomaly-rate 30 --monitoring-interval-critical 2000"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\w+) \[\d+\] ")
CHECKPOINT = re.compile(
    r"checkpoint complete: wrote (\d+) buffers .*write=([\d.]+) s, sync=([\d.]+) s, "
    r"total=([\d.]+) s"
)


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _log_times(log: Path, marker: str) -> list[float]:
    """Epoch seconds of every server log line that contains `marker` (the log is in UTC)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_TIME.match(line)
        if match and marker in line:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
            found.append(stamp.replace(tzinfo=UTC).timestamp())
    return found


class Round:
    def __init__(self, name: str, repo: Path, demo_args: str, work: Path, verbose: bool) -> None:
        self.name, self.repo, self.work = name, repo, work
        self.socket = f"festmon-hup-{os.getpid()}-{work.name}"
        self.data_dir = work / "pgdata"
        command = (
            f"cd {repo} && {sys.executable} -m festmon_tui{' -v' if verbose else ''} demo"
            f" {demo_args}; echo FESTMON-EXIT=$?; sleep 30"
        )
        env = {
            **os.environ,
            "MONITORING_DATA_DIR": str(self.data_dir),
            "XDG_STATE_HOME": str(work / "state"),
        }
        env.pop("DATABASE_URL", None)
        env.pop("PYTHONPATH", None)
        subprocess.run(
            [
                "tmux",
                "-L",
                self.socket,
                "new-session",
                "-d",
                "-s",
                "hup",
                "-x",
                "120",
                "-y",
                "40",
                command,
            ],
            env=env,
            check=True,
        )

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while not pattern.search(self.tmux("capture-pane", "-p", "-t", "hup")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"never on screen: {pattern.pattern}")
            time.sleep(0.1)

    def pids(self) -> tuple[int, int]:
        shell = psutil.Process(int(self.tmux("display", "-p", "-t", "hup", "#{pane_pid}")))
        festmon = shell.children()[0].pid
        postmaster = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return festmon, postmaster

    def hang_up(self) -> dict[str, Any]:
        festmon, postmaster = self.pids()
        load = os.getloadavg()
        self.tmux("kill-session", "-t", "hup")
        wall, start = time.time(), time.monotonic()
        festmon_s = postmaster_s = None
        while (festmon_s is None or postmaster_s is None) and time.monotonic() - start < 30:
            now = time.monotonic() - start
            if festmon_s is None and _gone(festmon):
                festmon_s = now
            if postmaster_s is None and _gone(postmaster):
                postmaster_s = now
            time.sleep(0.005)
        log = self.data_dir / "log"
        requested = [t for t in _log_times(log, "received fast shutdown request") if t >= wall - 1]
        down = [t for t in _log_times(log, "database system is shut down") if t >= wall - 1]
        checkpoints = CHECKPOINT.findall(log.read_text(errors="replace"))
        shutdown = checkpoints[-1] if checkpoints else None
        return {
            "variant": self.name,
            "load_1_5_15": [round(x, 2) for x in load],
            "festmon_s": _r(festmon_s),
            "postmaster_s": _r(postmaster_s),
            "stop_request_s": _r(requested[0] - wall) if requested else None,
            "server_shutdown_s": _r(down[0] - requested[0]) if requested and down else None,
            "checkpoint_buffers": int(shutdown[0]) if shutdown else None,
            "checkpoint_write_s": float(shutdown[1]) if shutdown else None,
            "checkpoint_sync_s": float(shutdown[2]) if shutdown else None,
            "checkpoint_total_s": float(shutdown[3]) if shutdown else None,
        }

    def close(self, keep_logs: Path) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        pidfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + 60
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        keep_logs.mkdir(parents=True, exist_ok=True)
        for log in (self.data_dir / "log", *self.work.glob("state/**/dashboard.log")):
            if log.exists():
                shutil.copy(log, keep_logs / log.name)
        shutil.rmtree(self.work, ignore_errors=True)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["variant"] for r in rounds):
        mine = [r for r in rounds if r["variant"] == name]
        entry: dict[str, Any] = {"rounds": len(mine)}
        for key in (
            "festmon_s",
            "stop_request_s",
            "postmaster_s",
            "checkpoint_total_s",
            "checkpoint_buffers",
        ):
            values = sorted(r[key] for r in mine if r[key] is not None)
            if values:
                entry[key] = {
                    "median": _r(statistics.median(values)),
                    "max": _r(values[-1]),
                    "all": values,
                }
        entry["postmaster_over_2s"] = sum(1 for r in mine if (r["postmaster_s"] or 99) >= 2.0)
        out[name] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant")
    parser.add_argument(
        "--warm-up", type=float, default=180.0, help="seconds live before SIGHUP (warm)"
    )
    parser.add_argument("--scenario", choices=("warm", "e2e"), default="warm")
    parser.add_argument("--rate", type=float, default=50.0, help="payments/s (warm)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=REPO_DIR",
        help="a checkout to run festmon from (default: this repository, as 'current')",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="festmon -v: debug log kept")
    args = parser.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("current", str(REPO))]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.json or REPO / "benchmarks" / "results" / f"hangup-{stamp}.json"
    rounds: list[dict[str, Any]] = []
    doc: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "variants": dict(variants),
    }
    for index in range(args.rounds):
        for name, repo in variants:
            work = Path(tempfile.mkdtemp(prefix="festmon-hup-"))
            seed = args.seed + index
            if args.scenario == "warm":
                demo_args = f"--rate {args.rate:g} --seed {seed}"
            else:
                demo_args = f"{E2E_DEMO} --seed {seed}"
            run = Round(name, Path(repo), demo_args, work, args.verbose)
            try:
                if args.scenario == "warm":
                    run.wait_for(LIVE)
                    time.sleep(args.warm_up)  # the festival runs: the load being measured
                else:
                    run.wait_for(CRITICAL_ROW, timeout_s=180)
                result = run.hang_up()
                rounds.append(result)
                print(json.dumps(result), flush=True)
            finally:
                run.close(out.with_suffix("") / f"round{index + 1}-{name}")
            doc["rounds"] = rounds
            doc["summary"] = _summary(rounds)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
