"""The exit clock the end-to-end stop tests rely on: it times festmon's own exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.exit_clock import RECORD_ENV, ServerStop, command, mark, own_seconds

REPO = Path(__file__).resolve().parents[2]


def test_festmon_started_through_the_exit_clock_records_its_exit(tmp_path: Path) -> None:
    record = tmp_path / "exit"
    env = {**os.environ, RECORD_ENV: str(record)}
    proc = subprocess.Popen(
        command("--version"), env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    since = mark(proc.pid)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 0 and out.startswith(b"festmon ")
    exited_in = own_seconds(record, since)
    assert 0 < exited_in < 60


def test_an_exit_through_os_exit_is_recorded_too(tmp_path: Path) -> None:
    record = tmp_path / "exit"
    # What a hang-up does: leave at once with os._exit, skipping atexit.
    script = (
        "import os, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        " from tests.exit_clock import _install; _install(Path(sys.argv[2])); os._exit(3)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO), str(record)], timeout=60)

    assert done.returncode == 3
    exited_at, _delay = (float(x) for x in record.read_text().split())
    assert exited_at > 0


# A parent that, once told on stdin, runs a child that sleeps 0.3 s and waits for it.
PARENT = (
    "import subprocess, sys; sys.stdin.readline();"
    " subprocess.run([sys.executable, '-c', 'import time; time.sleep(0.3)'], check=True)"
)


def test_a_server_stop_counts_the_waits_its_processes_chose() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, text=True)
    try:
        stop = ServerStop(parent.pid, others=())
        assert parent.stdin is not None
        parent.stdin.write("stop\n")
        parent.stdin.flush()
        own = stop.wait_own_seconds(limit_s=60)
        # The child's sleep is a wait it chose: in full. Only time spent waiting for a CPU goes.
        assert 0.3 <= own < time.monotonic() - stop.at
    finally:
        parent.kill()
        parent.wait()


def test_a_server_that_does_not_stop_takes_forever() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, text=True)
    try:
        assert ServerStop(parent.pid, others=()).wait_own_seconds(limit_s=0.2) == float("inf")
    finally:
        parent.kill()
        parent.wait()
