"""`festmon run --headless` (systemd) through a network cut: it stays up and logs it plainly."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.reliability.cli import environment
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database

pytestmark = pytest.mark.slow


async def test_a_headless_scheduler_rides_out_a_network_cut_with_one_line_per_change(
    rel_db: Database, proxy: FaultProxy, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless",
        "--database-url", rel_db.tcp_dsn(port=proxy.port),
        "--monitoring-interval-critical", "200", "--monitoring-poll-interval-ms", "200",
        "--monitoring-circuit-failure-threshold", "2", "--monitoring-connect-timeout-ms", "1000",
        "--monitoring-circuit-recovery-timeout-ms", "1000",
        cwd=tmp_path, env=environment(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []

    async def read_until(text: str, after: int = 0) -> int:
        """Read the log until a line after index `after` holds `text`; return its index."""
        try:
            async with asyncio.timeout(30):
                while True:
                    for index in range(after, len(lines)):
                        if text in lines[index]:
                            return index
                    line = await process.stderr.readline()  # type: ignore[union-attr]
                    assert line, "festmon exited:\n" + "".join(lines)
                    lines.append(line.decode())
        except TimeoutError:
            raise AssertionError(f"no {text!r} in the log:\n" + "".join(lines)) from None

    try:
        ran = await read_until("job critical ok")
        proxy.drop()
        went = await read_until("database unavailable", ran)
        await read_until("job critical FAILED", ran)
        # Stay down long enough for the pool to retry reconnecting in the background.
        await read_until("circuit breaker database is OPEN", went)
        proxy.forward()
        back = await read_until("database connected", went)
        await read_until("job critical ok", back)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 10)
    log = "".join(lines) + rest.decode()
    assert process.returncode == 0
    assert "Traceback" not in log, log
