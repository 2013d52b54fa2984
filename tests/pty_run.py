"""Run festmon with stdout and stderr on pseudo-terminals and keep the raw bytes it wrote.

Each stream gets its own pty in raw mode (no CR/LF translation), so the bytes are exactly what
festmon wrote to a terminal; `isatty()` is true for both, as in an operator's shell.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import tty
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PtyResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def _pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave


def festmon_on_pty(*args: str, cwd: Path, env: dict[str, str], timeout_s: float = 60) -> PtyResult:
    """`python -m festmon_tui ARGS` with a terminal for stdout and one for stderr."""
    out_master, out_slave = _pty()
    err_master, err_slave = _pty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "festmon_tui", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_slave,
            stderr=err_slave,
        )
    finally:
        os.close(out_slave)
        os.close(err_slave)
    chunks: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_fds = set(chunks)
    deadline = time.monotonic() + timeout_s
    try:
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                raise AssertionError(f"festmon {' '.join(args)} did not finish in {timeout_s} s")
            ready, _, _ = select.select(list(open_fds), [], [], remaining)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every writer of this terminal has closed it
                    data = b""
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.discard(fd)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(out_master)
        os.close(err_master)
    return PtyResult(code, b"".join(chunks[out_master]), b"".join(chunks[err_master]))
