"""systemd integration (issue 15.5): sd_notify over a real unix datagram socket, a watchdog
that a dead job loop stops feeding, journald's priority prefixes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from festmon_tui.cli import logs, sd_notify


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    directory = Path(tempfile.mkdtemp(prefix="fm-sd-"))  # short: sun_path is 108 bytes
    path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()
    path.unlink()
    directory.rmdir()


def _received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_notify_sends_one_datagram_to_notify_socket(notify_socket: socket.socket) -> None:
    assert sd_notify.notify("READY=1\nSTATUS=scheduler running")
    assert _received(notify_socket) == ["READY=1\nSTATUS=scheduler running"]


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify.notify("READY=1") is False


def test_an_abstract_socket_name_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"festmon-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify.notify("WATCHDOG=1")
        assert _received(sock) == ["WATCHDOG=1"]


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert sd_notify.watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 5.0
    mine = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert sd_notify.watchdog_interval_s(mine) == 5.0
    assert sd_notify.watchdog_interval_s({**mine, "WATCHDOG_PID": "1"}) is None
    assert sd_notify.watchdog_interval_s({}) is None


async def test_a_dead_job_loop_stops_feeding_the_watchdog(notify_socket: socket.socket) -> None:
    alive = True
    ticks: list[bool] = []
    enough = asyncio.Event()

    def on_tick(fed: bool) -> None:
        nonlocal alive
        ticks.append(fed)
        if len(ticks) == 3:
            alive = False  # the scheduler's loop died (or wedged) here
        if len(ticks) == 6:
            enough.set()

    feeder = asyncio.create_task(sd_notify.feed_watchdog(lambda: alive, 0.01, on_tick))
    await asyncio.wait_for(enough.wait(), 10)
    feeder.cancel()
    assert ticks[:6] == [True, True, True, False, False, False]
    assert _received(notify_socket) == ["WATCHDOG=1"] * 3


def _record(level: int) -> logging.LogRecord:
    return logging.LogRecord("festmon_tui.headless", level, __file__, 1, "job %s", ("x",), None)


def test_journal_lines_carry_the_syslog_priority_and_no_timestamp(tmp_path: Path) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logs.formatter(journal=True))
    handler.addFilter(logs._Priority())
    lines = []
    for level in (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG):
        record = _record(level)
        assert handler.filter(record)
        lines.append(handler.format(record))
    assert lines == [
        "<3>ERROR festmon_tui.headless: job x",
        "<4>WARNING festmon_tui.headless: job x",
        "<6>INFO festmon_tui.headless: job x",
        "<7>DEBUG festmon_tui.headless: job x",
    ]


def test_journal_stream_must_name_stderr_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child of a journald service whose stderr was redirected keeps plain lines."""
    with open(tmp_path / "journal", "w") as journal, open(tmp_path / "other", "w") as other:
        stat = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        assert logs.under_journald(journal)
        assert not logs.under_journald(other)
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not logs.under_journald()
