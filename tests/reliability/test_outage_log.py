"""An outage is news once: the headless log says the database went away and came back, no more."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from festmon_tui.db.connect import ConnectOptions, create_pool, ping
from festmon_tui.settings import load_settings
from tests.reliability.cli import environment
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database
from tests.reliability.support import until

pytestmark = pytest.mark.slow


async def test_an_outage_is_one_line_not_one_per_pool_per_retry(
    rel_db: Database, proxy: FaultProxy, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless",
        "--database-url", rel_db.tcp_dsn(port=proxy.port),
        "--monitoring-interval-critical", "200", "--monitoring-poll-interval-ms", "200",
        "--monitoring-connect-timeout-ms", "1000", "--monitoring-lease-ttl-ms", "4000",
        "--monitoring-circuit-recovery-timeout-ms", "1000",
        cwd=tmp_path, env=environment(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []

    async def read_until(text: str, after: int = 0) -> int:
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
        for _outage in range(2):
            ran = await read_until("job critical ok", len(lines))
            proxy.drop()
            # Both pools retry their connection floor (after 1 s, then 2 s more) before the
            # leader's lease (4 s) runs out: several failed retries per pool.
            lost = await read_until("leader: lost term", ran)
            proxy.forward()
            back = await read_until("database connected", lost)
            outage_log = lines[ran:back]
            assert sum("database unavailable" in x for x in outage_log) == 1, "".join(outage_log)
            assert sum("asyncpg.pool" in x for x in outage_log) <= 1, "".join(outage_log)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 10)
    log = "".join(lines) + rest.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log, log


async def test_a_liveness_ping_cancelled_mid_flight_ends_cleanly(
    rel_db: Database, proxy: FaultProxy
) -> None:
    """A service stopping while its ping waits on a stalled network: the ping ends with the
    cancellation, not with asyncpg's 'another operation is in progress' from the release."""
    settings = load_settings({"database_url": rel_db.tcp_dsn(port=proxy.port)}, env_file=None)
    options = ConnectOptions.from_settings(settings, rel_db.tcp_dsn(port=proxy.port))
    pool = await create_pool(options, min_size=1, max_size=1)
    try:
        proxy.stall()
        pinging = asyncio.create_task(ping(pool, 30))
        await until(lambda: pool.get_idle_size() == 0, 5, "the ping to hold the connection")
        pinging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pinging
        proxy.forward()
        await ping(pool, 5)  # the pool works again: the stalled connection was closed, not stuck
    finally:
        proxy.forward()
        pool.terminate()
