"""`festmon run --headless` under systemd (issue 15.5), with a real notify socket and stderr a
file named by JOURNAL_STREAM: READY=1, WATCHDOG=1 while running, STOPPING=1, and journal lines
with syslog priorities and no timestamp of their own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.db.test_cli_ops import environment


async def test_headless_under_systemd_notifies_and_logs_for_the_journal(
    db_dsn: str, tmp_path: Path
) -> None:
    lines = await asyncio.to_thread(_run_under_systemd, db_dsn, tmp_path)
    assert lines, "nothing logged"
    for line in lines:
        assert re.match(r"<[0-7]>", line), line
        assert not re.search(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", line), line  # journald stamps it
    assert any(line.startswith("<6>INFO festmon_tui.headless: job critical ok") for line in lines)


def _run_under_systemd(db_dsn: str, tmp_path: Path) -> list[str]:
    """Run the scheduler as systemd would; check its notifications; return its stderr lines."""
    directory = Path(tempfile.mkdtemp(prefix="fm-sd-"))
    address = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    sock.settimeout(30)
    journal_path = tmp_path / "journal"
    journal = journal_path.open("w")
    stat = os.fstat(journal.fileno())
    env = environment(
        NOTIFY_SOCKET=str(address),
        WATCHDOG_USEC="200000",
        JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "festmon_tui", "run", "--headless", "--database-url", db_dsn,
         "--monitoring-interval-critical", "500", "--monitoring-lease-ttl-ms", "3000"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=journal,
    )  # fmt: skip
    try:
        messages = [sock.recv(4096).decode()]
        assert messages[0].startswith("READY=1\nSTATUS=scheduler running on ")
        # The watchdog is fed (every 0.1 s) until the first critical job run is in the journal.
        for _ in range(300):
            messages.append(sock.recv(4096).decode())
            if "job critical ok" in journal_path.read_text():
                break
        assert "job critical ok" in journal_path.read_text()
        assert set(messages[1:]) == {"WATCHDOG=1"} and len(messages) >= 2
        proc.send_signal(signal.SIGTERM)
        while (message := sock.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        journal.close()
        sock.close()
        address.unlink()
        directory.rmdir()
    return journal_path.read_text().splitlines()
