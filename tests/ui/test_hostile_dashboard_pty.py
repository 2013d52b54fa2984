"""The real dashboard on a real pseudo-terminal, over the hostile corpus in a real database.

Everything festmon writes to the terminal is kept as raw bytes: Textual's own escape sequences
are expected, the stored ones (OSC 52 clipboard, window titles, hyperlinks, device reports,
C1 controls, bidi overrides) must not be among them — in the list and in the detail screen
with its action history.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import asyncpg

from tests.hostile_corpus import assert_no_payload
from tests.reliability.cli import environment
from tests.ui.test_hostile_dashboard import _store_corpus


class PtyApp:
    """festmon's dashboard with a pseudo-terminal for its stdin, stdout and stderr."""

    def __init__(self, args: list[str], home: Path, size: tuple[int, int] = (160, 50)) -> None:
        self.master, slave = os.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = environment(TERM="xterm-256color", HOME=str(home), COLUMNS="", LINES="")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "festmon_tui", "--env-file", "/dev/null", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={k: v for k, v in env.items() if v},
            cwd=home,
            start_new_session=True,
        )
        os.close(slave)
        self.output = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the app closed the terminal
                data = b""
            with self._changed:
                self.output += data
                self._changed.notify_all()
                if not data:
                    return

    def wait_for(self, needle: bytes, timeout_s: float = 30) -> None:
        """Block until `needle` has been written (condition variable, no polling sleep)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while needle not in self.output:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"{needle!r} never written; last: {self.output[-400:]!r}")
                self._changed.wait(remaining)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def stop(self) -> bytes:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._reader.join(timeout=5)
            os.close(self.master)
        return bytes(self.output)


async def test_the_dashboard_on_a_real_terminal_never_writes_a_stored_sequence(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await _store_corpus(conn)
    app = await asyncio.to_thread(
        PtyApp, ["dashboard", "--viewer", "--database-url", db_dsn], tmp_path
    )
    try:
        await asyncio.to_thread(app.wait_for, b"card\\x1b")  # the list, with the corpus in it
        await asyncio.to_thread(app.type, b"\r")  # the detail of the top (CRITICAL) event
        await asyncio.to_thread(app.wait_for, b"second line")  # its note, in the history
    finally:
        raw = await asyncio.to_thread(app.stop)
    assert_no_payload(raw)
    assert b"\\x1b]52;c;" in raw  # the stored clipboard write is shown, as text
