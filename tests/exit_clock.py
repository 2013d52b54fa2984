"""How long festmon takes to exit after a signal, in its own time rather than the machine's.

On a shared machine the wall time from "signal sent" to "test saw the process gone" includes
the test's own polling and every moment the machine gave festmon no CPU. So festmon is started
through this file (`command(...)`), which runs it in the same process and, as the very last
thing before the process ends (atexit after the threads are joined, or `os._exit`), writes the
monotonic time and the main thread's run-queue delay (/proc schedstat: time runnable but not
running) to the file named by FESTMON_TEST_EXIT_RECORD. `own_seconds` is then the time from the
test's mark to that exit, minus the time the machine kept festmon's main thread waiting for a
CPU. Waits festmon chose (a lock, a timeout, a join) still count in full.

A process festmon does not run itself (the embedded server's postmaster) cannot record its
exit: `ServerStop` watches it from the test instead, sampling the run-queue delay of every
process on the way to its end until it is gone (see there).
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_ENV = "FESTMON_TEST_EXIT_RECORD"


def command(*args: str) -> list[str]:
    """The argv that runs `festmon <args>` with its exit timed (`python -m festmon_tui` else)."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


def run_delay_s(pid: int, tid: int | None = None) -> float:
    """Seconds the process's main thread (or thread `tid`) has spent runnable but waiting for
    a CPU."""
    fields = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()
    return int(fields[1]) / 1e9


@dataclass(frozen=True)
class Mark:
    """The moment the test asked festmon to stop, on the clock festmon reads at its exit."""

    at: float
    run_delay_s: float


def mark(pid: int) -> Mark:
    """Take just before sending the signal (or the key) that should end festmon."""
    return Mark(time.monotonic(), run_delay_s(pid))


def own_seconds(record: Path, since: Mark) -> float:
    """Seconds from `since` to festmon's exit, less the time the machine kept it off the CPU."""
    assert record.exists(), "festmon ended without reaching its exit (killed?)"
    exited_at, delay_at_exit = (float(x) for x in record.read_text().split())
    return (exited_at - since.at) - (delay_at_exit - since.run_delay_s)


def gone(pid: int) -> bool:
    """Whether the process has ended (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def children(pid: int) -> list[int]:
    """The process's live children (its own threads excluded)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().split(")")[-1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone while listing
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


@dataclass
class ServerStop:
    """How long a process tree takes to end after a mark, in the processes' own time.

    From the mark to the moment the test sees `root` gone, less (1) the test thread's
    run-queue delay since its previous look (its seeing late) and (2) the largest run-queue
    delay any one watched process accrued since the mark: `others` (festmon, which asks for
    the stop) and `root` with its children, every one of which `root` waits for before it
    ends. The largest, not the sum: processes that waited side by side are not subtracted
    twice. A process first seen after the mark counts its whole delay; one that ends counts
    what was last sampled.
    """

    root: int
    others: tuple[int, ...]
    at: float = field(init=False)
    _first: dict[int, float] = field(init=False, default_factory=dict)
    _last: dict[int, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._sample()
        self._first = dict(self._last)
        self.at = time.monotonic()

    def _sample(self) -> None:
        for pid in (*self.others, self.root, *children(self.root)):
            try:
                self._last[pid] = run_delay_s(pid)
            except (OSError, IndexError, ValueError):
                continue  # ended: its last sample stands

    def wait_own_seconds(self, limit_s: float = 15.0) -> float:
        """Wait until `root` is gone (limit_s of wall time at most): its own seconds, or
        infinity if it is still there."""
        tid = threading.get_native_id()
        looked = run_delay_s(os.getpid(), tid)
        while not gone(self.root) and time.monotonic() - self.at < limit_s:
            self._sample()
            looked = run_delay_s(os.getpid(), tid)
            time.sleep(0.02)
        if not gone(self.root):
            return float("inf")
        seen = time.monotonic() - self.at
        # Late: only the CPU the test waited for since its previous look (that look saw root).
        late = run_delay_s(os.getpid(), tid) - looked
        held = max(d - self._first.get(pid, 0.0) for pid, d in self._last.items())
        return seen - late - held


def _install(record: Path) -> None:
    def write() -> None:
        record.write_text(f"{time.monotonic()!r} {run_delay_s(os.getpid())!r}")

    atexit.register(write)  # registered first, so it runs last
    exit_at_once = os._exit

    def timed_exit(code: int) -> None:
        write()
        exit_at_once(code)

    os._exit = timed_exit


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder (tests/) must not shadow anything festmon imports
    if RECORD_ENV in os.environ:
        _install(Path(os.environ[RECORD_ENV]))
    sys.argv[0] = "festmon"
    runpy.run_module("festmon_tui", run_name="__main__", alter_sys=True)
