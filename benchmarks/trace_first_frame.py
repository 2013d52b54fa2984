"""Where `festmon dashboard` spends its CPU before the first frame, tree against tree.

Usage (needs tmux):
    python benchmarks/trace_first_frame.py --trees old=/path/a,new=/path/b [--samples 10]
        [--mode dashboard|demo]

Runs the real command in a tmux pane of its own (socket festmon-trace-<pid>, 120x40), each
tree as PYTHONPATH=<tree>, samples alternating between the trees, through a wrapper that
notes, at each milestone, the wall time since exec and the main thread's CPU time: argv parsed
and settings loaded, the UI imported, the first frame rendered and written to the terminal;
with the cyclic garbage collector's collections and time until then (gc.callbacks). Prints the
median of each per tree. For finding causes; bench_dashboard.py measures first paint itself.
The dashboard runs against an empty festmon database on an embedded server of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs inside the measured process: argv[1] is the output file, the rest festmon's argv.
WRAPPER = r'''
import gc, json, os, sys, time
T0 = int(os.environ["TRACE_T0_NS"]) / 1e9
OUT = sys.argv[1]
marks, gcs = [], {"n": 0, "cpu": 0.0, "at": 0.0}
def mark(name):
    marks.append((name, (time.time() - T0) * 1000, time.thread_time() * 1000,
                  gcs["n"], gcs["cpu"] * 1000))
def on_gc(phase, info):
    if phase == "start":
        gcs["at"] = time.thread_time()
    else:
        gcs["n"] += 1
        gcs["cpu"] += time.thread_time() - gcs["at"]
gc.callbacks.append(on_gc)
mark("python started")
import festmon_tui.cli as cli
mark("festmon_tui.cli imported")
load = cli.load_settings
def load_settings(*args, **kwargs):
    settings = load(*args, **kwargs)
    mark("argv parsed, settings loaded")
    return settings
cli.load_settings = load_settings
import festmon_tui.cli.ui_commands as ui_commands
run = ui_commands._run
async def traced_run(*args, **kwargs):
    mark("UI imports start")
    from textual.app import App
    import festmon_tui.ui.app
    mark("festmon_tui.ui.app imported")
    display = App._display
    def traced_display(self, screen, renderable):
        display(self, screen, renderable)
        if renderable is not None and not any(m[0] == "first frame rendered" for m in marks):
            mark("first frame rendered")
    App._display = traced_display
    return await run(*args, **kwargs)
ui_commands._run = traced_run
class Terminal:
    """sys.__stderr__ (Textual's output) noting when the first big write is done."""
    def __init__(self, stream):
        self._stream = stream
    def write(self, text):
        written = self._stream.write(text)
        if len(text) > 2000 and not any(m[0] == "first frame written" for m in marks):
            self._stream.flush()
            mark("first frame written")
        return written
    def __getattr__(self, name):
        return getattr(self._stream, name)
sys.__stderr__ = Terminal(sys.__stderr__)
try:
    code = cli.main(sys.argv[2:])
finally:
    with open(OUT, "w") as out:
        json.dump(marks, out)
raise SystemExit(code)
'''

MILESTONES = (
    "python started",
    "festmon_tui.cli imported",
    "argv parsed, settings loaded",
    "UI imports start",
    "festmon_tui.ui.app imported",
    "first frame rendered",
    "first frame written",
)


def tmux(socket: str, *args: str) -> str:
    command = ["tmux", "-L", socket, "-f", "/dev/null", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", required=True, help="name=path,name=path")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--mode", choices=("dashboard", "demo"), default="dashboard")
    args = parser.parse_args()
    trees = [tuple(item.split("=", 1)) for item in args.trees.split(",")]
    from festmon_tui.db.embedded import EmbeddedServer  # the measuring process only

    workdir = Path(tempfile.mkdtemp(prefix="festmon-trace-"))
    wrapper = workdir / "wrapper.py"
    wrapper.write_text(WRAPPER)
    server = EmbeddedServer(workdir / "pgdata")
    dsn = server.start()
    subprocess.run(
        [sys.executable, "-m", "festmon_tui", "--env-file", "/dev/null", "db", "migrate",
         "--database-url", dsn],
        check=True, capture_output=True,
    )  # fmt: skip
    festmon_args = (
        f"dashboard --database-url {shlex.quote(dsn)}"
        if args.mode == "dashboard"
        else f"demo --monitoring-data-dir {shlex.quote(str(workdir / 'pgdata'))}"
    )
    socket = f"festmon-trace-{os.getpid()}"
    tmux(socket, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "sleep 100000")
    tmux(socket, "set-option", "-g", "remain-on-exit", "on")
    traces: dict[str, list[list[list[float]]]] = {name: [] for name, _ in trees}
    loads = []
    try:
        for _ in range(args.samples):
            for name, path in trees:
                out = workdir / "marks.json"
                out.unlink(missing_ok=True)
                loads.append(os.getloadavg()[0])
                tmux(
                    socket, "respawn-pane", "-k", "-t", "t",
                    f"exec env PYTHONPATH={shlex.quote(path)} TRACE_T0_NS=$(date +%s%N) "
                    f"{shlex.quote(sys.executable)} {wrapper} {out} --env-file /dev/null "
                    f"{festmon_args}",
                )  # fmt: skip
                time.sleep(1.5)
                tmux(socket, "send-keys", "-t", "t", "q")
                deadline = time.monotonic() + 15
                while tmux(socket, "display-message", "-p", "-t", "t", "#{pane_dead}") != "1\n":
                    if "Quit festmon?" in tmux(socket, "capture-pane", "-p", "-t", "t"):
                        tmux(socket, "send-keys", "-t", "t", "y")  # it leads: quitting asks
                    if time.monotonic() > deadline:
                        pid = tmux(socket, "display-message", "-p", "-t", "t", "#{pane_pid}")
                        print(f"{name}: pid {pid.strip()} did not exit on q; killed", flush=True)
                        os.kill(int(pid), 9)
                        break
                    time.sleep(0.1)
                if out.exists():
                    traces[name].append(json.loads(out.read_text()))
    finally:
        tmux(socket, "kill-server")
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{args.mode}, {args.samples} starts per tree, load average (1 min) during the run: "
        f"median {statistics.median(loads):.2f}, {min(loads):.2f}-{max(loads):.2f}"
    )
    print(f"{'milestone: median wall since exec / main-thread CPU (ms)':56s}", end="")
    print("".join(f" | {name:>17s}" for name, _ in trees))
    for milestone in MILESTONES:
        print(f"{milestone:56s}", end="")
        for name, _ in trees:
            found = [m for trace in traces[name] for m in trace if m[0] == milestone]
            wall = statistics.median(m[1] for m in found) if found else float("nan")
            cpu = statistics.median(m[2] for m in found) if found else float("nan")
            print(f" | {wall:7.1f} / {cpu:7.1f}", end="")
        print()
    print(f"{'gc until the first frame: collections / CPU (ms)':56s}", end="")
    for name, _ in trees:
        found = [m for trace in traces[name] for m in trace if m[0] == "first frame rendered"]
        count = statistics.median(m[3] for m in found) if found else float("nan")
        cpu = statistics.median(m[4] for m in found) if found else float("nan")
        print(f" | {count:7.0f} / {cpu:7.1f}", end="")
    print()


if __name__ == "__main__":
    main()
