"""Bytes the dashboard writes to its terminal, idle and under the demo's traffic (issue 17.1).

Usage:
    python benchmarks/bench_bandwidth.py [--sizes 80x24,200x50] [--window 45] [--warm-up 15]
        [--variant NAME=REPO_DIR ...] [--json benchmarks/results/bandwidth-<UTC time>.json]

Each measure runs the real `festmon demo` (`python -m festmon_tui demo`) on a pseudo-terminal
of the given size (os.openpty + TIOCSWINSZ), with its own HOME, XDG_STATE_HOME and embedded
server data dir in a temporary directory. It waits until the header says "connected (live)",
lets the dashboard run --warm-up seconds more (the first trends, charts and job runs), then
counts every byte festmon writes to the terminal during --window seconds. Two loads:

* idle: `--rate 0.5 --anomaly-rate 0` (the quietest festival the demo runs: no new events);
* traffic: the demo's defaults (a busy Saturday night, anomalies injected).

With several --variant NAME=REPO_DIR (e.g. `git worktree add --detach /tmp/before main`),
measures alternate between them (A B A B ...) so that every variant sees the same machine
load; each runs `python -m festmon_tui` from that directory (its code first on sys.path).
Prints KB/s per variant, size and load, and the ratio to the first variant.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIVE = b"connected (live)"
LOADS = {
    "idle": ["--rate", "0.5", "--anomaly-rate", "0", "--seed", "7"],
    "traffic": ["--seed", "7"],
}
START_TIMEOUT_S = 120.0


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def measure(repo: Path, size: tuple[int, int], load: str, window: float, warm_up: float) -> dict:
    width, height = size
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    with tempfile.TemporaryDirectory(prefix="festmon-bw-") as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "XDG_STATE_HOME": f"{tmp}/state",
            "MONITORING_DATA_DIR": f"{tmp}/pgdata",
            "TERM": "xterm-256color",
            "COLORTERM": "truecolor",
            "COLUMNS": str(width),
            "LINES": str(height),
        }
        env.pop("DATABASE_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "festmon_tui", "demo", *LOADS[load]],
            cwd=repo,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        selector = selectors.DefaultSelector()
        selector.register(master, selectors.EVENT_READ)
        started = time.monotonic()
        tail = b""
        phase, phase_end = "start", started + START_TIMEOUT_S
        counted, per_second = 0, [0] * int(window)
        count_from = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= phase_end:
                    if phase == "start":
                        raise RuntimeError(f"not live within {START_TIMEOUT_S} s ({repo})")
                    if phase == "warm-up":
                        phase, count_from, phase_end = "count", now, now + window
                        continue
                    break
                for _key, _mask in selector.select(timeout=min(0.5, phase_end - now)):
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        data = b""
                    if not data:
                        raise RuntimeError(f"festmon exited early ({repo})")
                    if phase == "start":
                        tail = (tail + data)[-4096:]
                        if LIVE in tail:
                            phase, phase_end = "warm-up", time.monotonic() + warm_up
                    elif phase == "count":
                        counted += len(data)
                        second = int(time.monotonic() - count_from)
                        if second < len(per_second):
                            per_second[second] += len(data)
        finally:
            with_signal(proc, signal.SIGTERM)
            selector.close()
            os.close(master)
    return {
        "variant_dir": str(repo),
        "size": f"{width}x{height}",
        "load": load,
        "window_s": window,
        "bytes": counted,
        "kb_per_s": counted / window / 1000,
        "bytes_per_second": per_second,
        "live_after_s": round(count_from - started - warm_up, 1),
    }


def with_signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Ask festmon to stop; its whole session (festmon and its server) if it does not."""
    if proc.poll() is None:
        proc.send_signal(signum)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="80x24,200x50")
    parser.add_argument("--loads", default="idle,traffic")
    parser.add_argument("--window", type=float, default=45.0, help="seconds counted per measure")
    parser.add_argument("--warm-up", type=float, default=15.0)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=REPO_DIR")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("this", str(REPO))]
    results: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        for load in args.loads.split(","):
            for name, repo in variants:
                result = measure(Path(repo), _size(size), load, args.window, args.warm_up)
                result["variant"] = name
                results.append(result)
                print(
                    f"{name:>8} {size:>7} {load:>8}: {result['kb_per_s']:7.2f} KB/s"
                    f" ({result['bytes']} bytes in {args.window:g} s)",
                    flush=True,
                )
    print("\nvariant    size     load      KB/s   x first variant")
    for result in results:
        first = next(
            r for r in results if r["size"] == result["size"] and r["load"] == result["load"]
        )
        ratio = first["kb_per_s"] / result["kb_per_s"] if result["kb_per_s"] else float("inf")
        print(
            f"{result['variant']:>8} {result['size']:>7} {result['load']:>8}"
            f" {result['kb_per_s']:8.2f}   {ratio:6.1f}x less"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "when": datetime.now(UTC).isoformat(),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "args": vars(args) | {"json": str(args.json)},
        }
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
