"""How long festmon takes to exit after a signal, in its own time rather than the machine's.

On a shared machine the wall time from "signal sent" to "test saw the process gone" includes
the test's own polling and every moment the machine gave festmon no CPU. So festmon is started
through this file (`command(...)`), which runs it in the same process and, as the very last
thing before the process ends (atexit after the threads are joined, or `os._exit`), writes the
monotonic time and the main thread's run-queue delay (/proc schedstat: time runnable but not
running) to the file named by FESTMON_TEST_EXIT_RECORD. `own_seconds` is then the time from the
test's mark to that exit, minus the time the machine kept festmon's main thread waiting for a
CPU. Waits festmon chose (a lock, a timeout, a join) still count in full.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RECORD_ENV = "FESTMON_TEST_EXIT_RECORD"


def command(*args: str) -> list[str]:
    """The argv that runs `festmon <args>` with its exit timed (`python -m festmon_tui` else)."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


def run_delay_s(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU."""
    fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
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
