"""Dashboard speed in a real terminal: first paint, key press to repaint, insert to screen.

Usage (needs tmux; the festmon console script next to the Python running this):
    python benchmarks/bench_dashboard.py [--samples 20] [--events 100000] [--size 120x40]
        [--only first_paint,demo_paint,keys,live] [--json benchmarks/results/dashboard.json]
        [--trees old=/path/to/checkout,new=/path/to/checkout] [--verbose]

--trees compares source trees (git worktrees): each festmon runs with PYTHONPATH=<tree>; first
paint samples alternate between the trees, the other measures run tree after tree. Without it
the installed festmon is measured. --profile DIR runs festmon under cProfile; --app-log runs it
with -v (its debug log file): both for finding causes, not for figures.

It starts its own embedded PostgreSQL in a temp data dir (festmon_tui.db.embedded), applies both
migration sets, loads --events monitoring events (spread over the past week, all five severities
in every run of five consecutive events, 80 % of them active), and drives the real `festmon`
processes in a tmux server of its own (socket festmon-bench-<pid>), attached in control mode:
tmux reports every chunk the app writes (%output) the moment it has parsed it into the pane, and
`capture-pane` reads the screen without starting a process per poll. A sample ends at the
arrival of the last %output before the capture that first shows the expected screen, so its
error is at most one capture round trip (reported as "resolution").

Measures (each --samples times; median and p95 in ms, with the load average around it, and the
app main thread's CPU time and time waiting for a CPU from /proc/<pid>/schedstat):
  1. first paint: from `respawn-pane` exec'ing `festmon dashboard --database-url ...` (and
     `festmon demo`) to the first screen with every pane drawn (the health, breaker & jobs and
     trends borders and the event table's header); then `q` and wait for the process to exit.
  2. key press to repaint, with the events loaded, in one `festmon dashboard` against them:
     cursor down (the highlighted row is the next event), page down (the highlighted row moves a
     page), severity filter `s` (the filter bar names the new step and the visible rows are
     exactly the step's severities; sorted by age so that every severity shows), sort `o` (the
     filter bar names the next sort column), free-text search (the term typed and Enter in one
     send-keys; every visible row's card contains it, where none did before).
  3. insert to screen: another connection calls create_monitoring_event() (what the detection
     does) for a CRITICAL event on a new card; the time from just before that call (and,
     separately, from its commit) until the card is visible in the event list, the dashboard
     sorted by severity (the default). The live events are resolved afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from festmon_tui.db.embedded import EmbeddedServer
from festmon_tui.db.migrations import migrate

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
SEVERITY_STEPS = (  # what `s` steps through, from "all"
    ("CRITICAL", {"CRITICAL"}),
    ("≥HIGH", {"CRITICAL", "HIGH"}),
    ("≥MEDIUM", {"CRITICAL", "HIGH", "MEDIUM"}),
    ("≥LOW", {"CRITICAL", "HIGH", "MEDIUM", "LOW"}),
    ("all", set(SEVERITIES)),
)
# `o` steps through these sort columns (SortColumn order), shown as these header labels.
SORT_STEPS = ("age", "occ", "amount", "card", "type", "status", "severity")

# Events spread over the past week, newest last; severity i % 5 (every five consecutive events
# have all five); blocks of five alternate statuses so that the active filter keeps them whole.
LOAD_SQL = """
INSERT INTO monitoring_events (
    event_type, severity, card_id, transaction_id, affected_amount, detection_timestamp,
    detection_algorithm, confidence_score, event_data, status, fingerprint, occurrence_count,
    last_seen_at, created_at, updated_at)
SELECT (ARRAY['transaction_failure', 'balance_discrepancy', 'duplicate_nfc', 'race_condition',
              'system_health'])[1 + (i / 5) % 5],
       (ARRAY['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO'])[1 + i % 5],
       'card-' || lpad(((i * 7919) % 50000 + 1)::text, 7, '0'),
       md5(i::text)::uuid,
       round(((i * 37) % 20000) / 100.0, 2),
       ts, 'bench_load', 1.0, jsonb_build_object('bench', i),
       CASE (i / 5) % 10 WHEN 0 THEN 'RESOLVED' WHEN 1 THEN 'INVESTIGATING' ELSE 'OPEN' END,
       'bench:' || i, 1 + i % 4, ts, ts, ts
FROM generate_series(1, $1::int) AS i,
     LATERAL (SELECT now() - make_interval(secs => ($1::int - i) * 604800.0 / $1::int)) AS t(ts)
"""

RESOLVE_LIVE_SQL = """
UPDATE monitoring_events SET status = 'RESOLVED', resolved_at = now()
WHERE detection_algorithm = 'bench_live' AND status = 'OPEN'
"""

INSERT_LIVE_SQL = """
SELECT create_monitoring_event('transaction_failure', 'CRITICAL', 'bench_live', $1::text,
                               NULL, 12.34, 1.0, '{"bench": "live"}'::jsonb)
"""


# ---- tmux in control mode ------------------------------------------------------------------


class Tmux:
    """One tmux server and session of our own, driven through a control-mode client."""

    def __init__(self, width: int, height: int, cwd: Path) -> None:
        self.socket = f"festmon-bench-{os.getpid()}"
        self.width, self.height, self.cwd = width, height, cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._replies: asyncio.Queue[list[str]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.output_seq = 0
        self.output_at = 0.0
        self._output = asyncio.Event()

    def _tmux(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.socket, "-f", "/dev/null", *args]

    def _run(self, *args: str) -> None:
        subprocess.run(self._tmux(*args), check=True, capture_output=True)

    async def start(self) -> None:
        size = ("-x", str(self.width), "-y", str(self.height))
        new = ("new-session", "-d", "-s", "bench", *size, "-c", str(self.cwd), "sleep 100000")
        await asyncio.to_thread(self._run, *new)
        await asyncio.to_thread(self._run, "set-option", "-g", "remain-on-exit", "on")
        await asyncio.to_thread(self._run, "set-option", "-g", "window-size", "manual")
        self.proc = await asyncio.create_subprocess_exec(
            *self._tmux("-C", "attach-session", "-t", "bench"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._replies.get(), 10)  # the attach command's own reply
        await self.command("refresh-client -C " + f"{self.width}x{self.height}")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        block: list[str] | None = None
        while line_bytes := await self.proc.stdout.readline():
            now = time.perf_counter()
            line = line_bytes.decode("utf-8", "replace").rstrip("\n")
            if block is not None:
                if line.startswith(("%end", "%error")):
                    await self._replies.put(block)
                    block = None
                else:
                    block.append(line)
            elif line.startswith("%begin"):
                block = []
            elif line.startswith("%output"):
                self.output_seq += 1
                self.output_at = now
                self._output.set()

    async def command(self, *lines: str) -> list[str]:
        """Send command lines at once; the reply of the last (each line gets its own)."""
        assert self.proc is not None and self.proc.stdin is not None
        while not self._replies.empty():  # a stray reply must never answer this command
            self._replies.get_nowait()
        self.proc.stdin.write(b"".join(line.encode() + b"\n" for line in lines))
        await self.proc.stdin.drain()
        reply: list[str] = []
        for _ in lines:
            reply = await asyncio.wait_for(self._replies.get(), 10)
        return reply

    async def capture(self, escapes: bool = False) -> list[str]:
        return await self.command("capture-pane -p" + (" -e" if escapes else "") + " -t bench")

    async def wait_output(self, after_seq: int, deadline: float) -> bool:
        while self.output_seq <= after_seq:
            self._output.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._output.wait(), left)
            except TimeoutError:
                return False
        return True

    async def until(
        self, condition: Callable[[list[str]], bool], since_seq: int, timeout_s: float = 20.0
    ) -> tuple[float, float]:
        """Wait for a screen satisfying `condition`: (when its output arrived, capture time)."""
        deadline = time.perf_counter() + timeout_s
        seen = since_seq
        while True:
            if not await self.wait_output(seen, deadline):
                screen = await self.capture()
                raise TimeoutError("screen never matched:\n" + "\n".join(screen))
            seen, arrived = self.output_seq, self.output_at
            started = time.perf_counter()
            screen = await self.capture(escapes=True)
            if condition(screen):
                return arrived, time.perf_counter() - started

    async def pane_dead(self) -> bool:
        reply = await self.command("display-message -p -t bench '#{pane_dead}'")
        return bool(reply) and reply[0].strip() == "1"

    async def respawn(self, command: str) -> None:
        await self.command(f"respawn-pane -k -t bench {shlex.quote(command)}")

    async def keys(self, *keys: str, literal: bool = False) -> None:
        flag = " -l" if literal else ""
        await self.command(f"send-keys{flag} -t bench " + " ".join(shlex.quote(k) for k in keys))

    async def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(self._run, "kill-server")
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
        if self._reader is not None:
            self._reader.cancel()


# ---- reading the screen --------------------------------------------------------------------

_SGR = re.compile(r"\x1b\[[0-9;]*m")
_BG = re.compile(r"\x1b\[[0-9;]*?(48;[0-9;]+?)m")


def plain(screen: list[str]) -> list[str]:
    return [_SGR.sub("", line) for line in screen]


def panes_drawn(screen: list[str]) -> bool:
    text = "\n".join(plain(screen))
    return all(
        marker in text for marker in ("─ health ─", "─ breaker & jobs ─", "─ trends ─", " occ")
    )


def _is_header(line: str) -> bool:
    # Its right end may be under a notification (a toast for each new CRITICAL event).
    return line.startswith(" severity") and " card " in line


def search_box(screen: list[str], cols: int = 32) -> str:
    """The filter bar's last `cols` columns as drawn (with styles): the search box."""
    lines = plain(screen)
    heads = [i for i, line in enumerate(lines) if _is_header(line)]
    if not heads or heads[0] == 0:
        return ""
    raw = screen[heads[0] - 1]
    visible = 0
    at = len(raw)
    while at > 0 and visible < cols:
        match = None
        for found in _SGR.finditer(raw[:at]):
            match = found
        if match is not None and match.end() == at:
            at = match.start()  # a style sequence ending here: part of the tail
            continue
        at -= 1
        visible += 1
    return raw[at:]


@dataclass
class Table:
    """The event list as shown: filter bar, header, rows (plain), highlighted row index."""

    bar: str
    header: str
    rows: list[list[str]] = field(default_factory=list)
    cursor: int | None = None

    @property
    def severities(self) -> set[str]:
        return {row[0] for row in self.rows if row and row[0] in SEVERITIES}

    def event_id(self, index: int | None) -> str | None:
        if index is None or index >= len(self.rows) or len(self.rows[index]) < 2:
            return None
        return self.rows[index][1]


def table(screen: list[str]) -> Table | None:
    lines = plain(screen)
    heads = [i for i, line in enumerate(lines) if _is_header(line)]
    if not heads:
        return None
    at = heads[0]
    shown = Table(bar=lines[at - 1] if at else "", header=lines[at])
    backgrounds: list[tuple[int, frozenset[str]]] = []
    for offset, line in enumerate(lines[at + 1 :], start=at + 1):
        if line.startswith(("╭", "⏎")) or not line.strip():
            break
        shown.rows.append(line.split())
        backgrounds.append((offset - at - 1, frozenset(_BG.findall(screen[offset]))))
    # The highlighted row is the only one with its background (zebra stripes repeat theirs).
    counts: dict[frozenset[str], int] = {}
    for _, bgs in backgrounds:
        counts[bgs] = counts.get(bgs, 0) + 1
    unique = [index for index, bgs in backgrounds if counts[bgs] == 1 and bgs]
    if len(unique) == 1 and len(backgrounds) > 2:
        shown.cursor = unique[0]
    return shown


# ---- the benchmark -------------------------------------------------------------------------


def schedstat(pid: int | None) -> tuple[float, float]:
    """(seconds on a CPU, seconds waiting for one) of the process's main thread so far."""
    if pid is None:
        return (0.0, 0.0)
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
            ran, waited, _ = stat.read().split()
    except (OSError, ValueError):
        return (0.0, 0.0)
    return int(ran) / 1e9, int(waited) / 1e9


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Series:
    """One measure's samples: latency, capture resolution, the app's main-thread scheduling."""

    name: str
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    values: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    quit_hangs: int = 0  # first paint: processes that did not exit on q (killed)

    def add(self, value: float, resolution: float, before: Sched, after: Sched) -> None:
        self.values.append(value)
        self.resolution.append(resolution)
        self.cpu.append(after[0] - before[0])
        self.wait.append(after[1] - before[1])

    def summary(self) -> dict[str, Any]:
        def ms(value: float) -> float:
            return round(value * 1000, 1)

        return {
            "n": len(self.values),
            "median_ms": ms(statistics.median(self.values)),
            "p95_ms": ms(p95(self.values)),
            "min_ms": ms(min(self.values)),
            "max_ms": ms(max(self.values)),
            "app_cpu_median_ms": ms(statistics.median(self.cpu)),
            "app_runqueue_wait_median_ms": ms(statistics.median(self.wait)),
            "resolution_median_ms": round(statistics.median(self.resolution) * 1000, 2),
            "load_before": self.load_before,
            "load_after": os.getloadavg(),
            "quit_hangs": self.quit_hangs,
            "samples_ms": [ms(v) for v in self.values],
        }


Sched = tuple[float, float]


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, workdir: Path, pgdata: Path) -> None:
        self.args = args
        self.dsn = dsn
        self.workdir = workdir
        self.pgdata = pgdata
        width, height = (int(v) for v in args.size.split("x"))
        self.tmux = Tmux(width, height, workdir)
        exe = Path(sys.executable).parent / "festmon"
        self.festmon = str(exe) if exe.exists() else (shutil.which("festmon") or "festmon")
        self.results: dict[str, Any] = {}
        self.app_pid: int | None = None
        # (label, PYTHONPATH for festmon): the installed festmon, or source trees to compare.
        self.trees: list[tuple[str, Path | None]] = [("", None)]
        if args.trees:
            self.trees = []
            for item in args.trees.split(","):
                name, _, path = item.partition("=")
                self.trees.append((f" [{name}]", Path(path).resolve()))

    def _festmon(self, tree: Path | None) -> str:
        env = "" if tree is None else f"env PYTHONPATH={shlex.quote(str(tree))} "
        if self.args.profile is None:
            return f"exec {env}{shlex.quote(self.festmon)}"
        self.args.profile.mkdir(parents=True, exist_ok=True)
        out = self.args.profile / f"festmon-{len(list(self.args.profile.iterdir()))}.prof"
        return (
            f"exec {env}{shlex.quote(sys.executable)} -m cProfile -o {shlex.quote(str(out))} "
            "-m festmon_tui"
        )

    def dashboard_command(self, tree: Path | None) -> str:
        debug = " -v" if self.args.app_log else ""
        return f"{self._festmon(tree)} --env-file /dev/null{debug} dashboard --database-url " + (
            shlex.quote(self.dsn)
        )

    def demo_command(self, tree: Path | None) -> str:
        return (
            f"{self._festmon(tree)} --env-file /dev/null demo "
            f"--monitoring-data-dir {shlex.quote(str(self.pgdata))}"
        )

    def record(self, series: Series) -> None:
        entry = series.summary()
        self.results[series.name] = entry
        if self.args.verbose:
            print("   ", entry["samples_ms"], flush=True)
        print(
            f"{series.name:26s} n={entry['n']:3d} median {entry['median_ms']:7.1f} ms  "
            f"p95 {entry['p95_ms']:7.1f} ms  (min {entry['min_ms']:.1f}, max "
            f"{entry['max_ms']:.1f}; app main thread: cpu {entry['app_cpu_median_ms']:.1f} ms, "
            f"waiting for a cpu {entry['app_runqueue_wait_median_ms']:.1f} ms; resolution "
            f"{entry['resolution_median_ms']:.2f} ms; load {entry['load_before'][0]:.2f} -> "
            f"{entry['load_after'][0]:.2f})",
            flush=True,
        )

    async def pane_pid(self) -> int | None:
        reply = await self.tmux.command("display-message -p -t bench '#{pane_pid}'")
        return int(reply[0]) if reply and reply[0].strip().isdigit() else None

    async def quit_app(self, series: Series | None = None) -> None:
        """`q`, then wait for the process to end; a first-paint sample outlives a hang.

        With `series`, a process still there after 15 s is counted in series.quit_hangs and
        SIGKILLed (it ignores SIGTERM then), so the paint samples go on; otherwise it is fatal.
        """
        await self.tmux.keys("q")
        deadline = time.perf_counter() + 15
        answered = False
        while not await self.tmux.pane_dead():
            if not answered and any("Quit festmon?" in line for line in await self.tmux.capture()):
                await self.tmux.keys("y")  # it leads the scheduler: quitting asks first (17.3)
                answered = True
            if time.perf_counter() > deadline:
                pid = await self.pane_pid()
                if series is None or pid is None:
                    raise TimeoutError("the dashboard did not exit on q")
                series.quit_hangs += 1
                print(f"    {series.name}: pid {pid} did not exit on q in 15 s; killed", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.perf_counter() + 15
                series = None
            await asyncio.sleep(0.05)

    async def first_paint(self, name: str, command: Callable[[Path | None], str]) -> None:
        """Samples alternate between the trees (A/B interleaved under the same load)."""
        series = {label: Series(f"{name}{label}") for label, _ in self.trees}
        for _ in range(self.args.samples):
            for label, tree in self.trees:
                seq = self.tmux.output_seq
                started = time.perf_counter()
                await self.tmux.respawn(command(tree))
                arrived, res = await self.tmux.until(panes_drawn, seq)
                pid = await self.pane_pid()
                # The whole process so far: what it did before the first frame, and a little.
                series[label].add(arrived - started, res, (0.0, 0.0), schedstat(pid))
                # Let it connect (the next start must not race this one's startup), then quit.
                await asyncio.sleep(1.0)
                await self.quit_app(series[label])
        for each in series.values():
            self.record(each)

    async def start_dashboard(self, tree: Path | None) -> Table:
        seq = self.tmux.output_seq
        await self.tmux.respawn(self.dashboard_command(tree))

        def loaded(screen: list[str]) -> bool:
            shown = table(screen)
            # loaded: rows on screen, the bar counting them and not saying "NOT REFRESHED"
            bar = shown.bar if shown is not None else ""
            return (
                shown is not None
                and " events" in bar
                and "NOT REFRESHED" not in bar
                and len(shown.rows) > 3
            )

        await self.tmux.until(loaded, seq, timeout_s=60)
        self.app_pid = await self.pane_pid()
        assert self.app_pid is not None and schedstat(self.app_pid) != (0.0, 0.0), self.app_pid
        await asyncio.sleep(1.5)  # the first health snapshot and trends land; not measured
        return await self.screen_table()

    async def screen_table(self) -> Table:
        shown = table(await self.tmux.capture(escapes=True))
        assert shown is not None, "no event table on screen"
        return shown

    async def focus_search(self) -> None:
        """`/`, then wait until the search box is drawn focused (typing must not reach the list,
        where letters are commands)."""
        before = search_box(await self.tmux.capture(escapes=True))
        seq = self.tmux.output_seq
        await self.tmux.keys("/")
        await self.tmux.until(lambda screen: search_box(screen) != before, seq)

    async def key_sample(
        self,
        series: Series | None,
        keys: list[str],
        condition: Callable[[Table], bool],
        literal: str | None = None,
    ) -> None:
        await asyncio.sleep(random.uniform(0.15, 0.35))  # off the 1 s clock tick's phase
        seq = self.tmux.output_seq
        before = schedstat(self.app_pid)
        started = time.perf_counter()
        if literal is not None:
            await self.tmux.command(
                f"send-keys -l -t bench {shlex.quote(literal)}",
                "send-keys -t bench " + " ".join(keys),
            )
        else:
            await self.tmux.keys(*keys)

        def matches(screen: list[str]) -> bool:
            shown = table(screen)
            return shown is not None and condition(shown)

        arrived, res = await self.tmux.until(matches, seq)
        if series is not None:
            series.add(arrived - started, res, before, schedstat(self.app_pid))

    async def keys_bench(self, label: str, tree: Path | None) -> None:
        await self.start_dashboard(tree)
        n = self.args.samples

        # cursor down: the highlighted row becomes the one that was below it
        series = Series("key: cursor down" + label)
        for _ in range(n):
            before = await self.screen_table()
            assert before.cursor is not None, "no highlighted row found"
            was = before.event_id(before.cursor)
            # The row below, or (cursor on the last visible line) whatever scrolled into view.
            below = before.event_id(before.cursor + 1)

            def moved_down(t: Table, was: str | None = was, below: str | None = below) -> bool:
                now = t.event_id(t.cursor)
                return now not in (None, was) and (below is None or now == below)

            await self.key_sample(series, ["Down"], moved_down)
        self.record(series)

        # page down: the highlighted row is another event, further down the list
        series = Series("key: page down" + label)
        for _ in range(n):
            before = await self.screen_table()
            was = before.event_id(before.cursor)

            def paged(t: Table, was: str | None = was) -> bool:
                return t.cursor is not None and t.event_id(t.cursor) not in (None, was)

            await self.key_sample(series, ["PageDown"], paged)
        self.record(series)

        # sort: the filter bar names the next sort column
        series = Series("key: sort (o)" + label)
        current = SORT_STEPS.index("severity")
        for _ in range(n):
            current = (current + 1) % len(SORT_STEPS)

            def sorted_by(t: Table, label: str = SORT_STEPS[current]) -> bool:
                return f"sort {_sort_name(label)} ▼" in t.bar

            await self.key_sample(series, ["o"], sorted_by)
        self.record(series)
        while SORT_STEPS[current] != "age":  # newest first: every severity is on screen
            current = (current + 1) % len(SORT_STEPS)
            await self.key_sample(
                None, ["o"], partial(_bar_has, f"sort {_sort_name(SORT_STEPS[current])} ▼")
            )

        # severity filter: the bar names the step, the rows are exactly its severities
        series = Series("key: severity filter (s)" + label)
        step = -1
        for _ in range(n):
            step = (step + 1) % len(SEVERITY_STEPS)
            step_label, wanted = SEVERITY_STEPS[step]

            def filtered(t: Table, shown: str = step_label, wanted: set[str] = wanted) -> bool:
                return f"severity {shown} " in t.bar and t.severities == wanted

            await self.key_sample(series, ["s"], filtered)
        self.record(series)
        while SEVERITY_STEPS[step][0] != "all":
            step = (step + 1) % len(SEVERITY_STEPS)
            await self.key_sample(None, ["s"], partial(_shows_only, SEVERITY_STEPS[step][1]))

        # free-text search: type a card prefix and Enter; every visible row matches it
        series = Series("key: search + Enter" + label)
        for index in range(n):
            term = f"card-00{(index * 37) % 400 + 100:03d}"  # cards 1 to 50 000
            await self.focus_search()

            def found(t: Table, term: str = term) -> bool:
                return bool(t.rows) and all(len(r) > 5 and term in " ".join(r) for r in t.rows)

            def cleared(t: Table, term: str = term) -> bool:
                return any(term not in " ".join(r) for r in t.rows)

            await self.key_sample(series, ["Enter"], found, literal=term)
            await self.key_sample(None, ["c"], cleared)  # clear filters and search (list focused)
        self.record(series)
        await self.quit_app()

    async def live_bench(self, label: str, tree: Path | None) -> None:
        await self.start_dashboard(tree)
        conn = await asyncpg.connect(self.dsn)
        series = Series("insert to screen" + label)
        after_commit = Series("commit to screen" + label)
        try:
            for index in range(self.args.samples):
                await asyncio.sleep(random.uniform(0.5, 1.5))
                card = f"LIVE-{len(self.results)}-{index:04d}"  # unique per tree
                seq = self.tmux.output_seq
                before = schedstat(self.app_pid)
                started = time.perf_counter()
                await conn.fetchval(INSERT_LIVE_SQL, card)
                committed = time.perf_counter()

                def visible(screen: list[str], card: str = card) -> bool:
                    shown = table(screen)
                    return shown is not None and any(card in " ".join(r) for r in shown.rows)

                arrived, res = await self.tmux.until(visible, seq)
                after = schedstat(self.app_pid)
                series.add(arrived - started, res, before, after)
                after_commit.add(arrived - committed, res, before, after)
                if self.args.verbose and arrived - committed > 1.0:
                    print(f"   slow: {card} committed {time.strftime('%H:%M:%S')}", flush=True)
            # Out of the active list again, so that the next tree starts from the same screen.
            await conn.execute(RESOLVE_LIVE_SQL)
        finally:
            await conn.close()
        self.record(after_commit)
        self.record(series)
        await self.quit_app()


def _bar_has(text: str, shown: Table) -> bool:
    return text in shown.bar


def _shows_only(severities: set[str], shown: Table) -> bool:
    return shown.severities == severities


def _sort_name(label: str) -> str:
    return {"occ": "occurrences"}.get(label, label)


async def load_events(dsn: str, events: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, with_payment_schema=True)
        started = time.perf_counter()
        await conn.execute(LOAD_SQL, events)
        await conn.execute("ANALYZE monitoring_events")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def environment() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("textual", "rich", "asyncpg", "festmon-tui"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "?"
    tmux = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
    return {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, {cpu}",
        "os": platform.platform(),
        "python": platform.python_version(),
        "tmux": tmux,
        **versions,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="festmon-bench-dash-"))
    pgdata = workdir / "pgdata"
    server = EmbeddedServer(pgdata)
    dsn = await asyncio.to_thread(server.start)
    bench = Bench(args, dsn, workdir, pgdata)
    report: dict[str, Any] = {"environment": environment(), "args": vars(args)}
    try:
        report["environment"]["postgresql"] = await server_version(dsn)
        load_s = await load_events(dsn, args.events)
        report["load_s"] = round(load_s, 1)
        print(f"loaded {args.events} events in {load_s:.1f} s; {report['environment']}")
        await bench.tmux.start()
        if "first_paint" in only:
            await bench.first_paint("first paint: dashboard", bench.dashboard_command)
        if "demo_paint" in only:
            await bench.first_paint("first paint: demo", bench.demo_command)
        if "keys" in only:
            for label, tree in bench.trees:
                await bench.keys_bench(label, tree)
        if "live" in only:
            for label, tree in bench.trees:
                await bench.live_bench(label, tree)
    finally:
        await bench.tmux.close()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    report["results"] = bench.results
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--size", default="120x40", help="terminal COLUMNSxLINES")
    parser.add_argument("--only", default="first_paint,demo_paint,keys,live")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument(
        "--app-log", action="store_true", help="run the dashboards with -v (debug log file)"
    )
    parser.add_argument(
        "--trees",
        help="compare source trees: name=path,name=path (festmon run with PYTHONPATH=path; "
        "first paint samples alternate between them)",
    )
    parser.add_argument(
        "--profile", type=Path, help="run festmon under cProfile, one .prof per start, here"
    )
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
