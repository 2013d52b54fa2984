"""festmon through a real, stock PgBouncer in transaction mode, while payments flow.

The pooler is Debian's `pgbouncer` with its stock pgbouncer.ini (see tests/reliability/pgbouncer.py
for the few lines changed) on a port other than 6432/6543, so festmon's auto mode must find it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions, DatabaseUnavailable, connect, create_pool
from festmon_tui.db.errors import DatabaseRefused, translated
from festmon_tui.models import ConnectionState
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from tests.reliability import dataset
from tests.reliability import pgbouncer as pgbouncer_module
from tests.reliability.cli import assert_clean_failure, environment, run
from tests.reliability.pgbouncer import PgBouncer
from tests.reliability.server import ADMIN_PASSWORD, Database, ReliabilityServer
from tests.reliability.support import until as until_done
from tests.ui.pilot import event_ids, make_app, settle, until

pytestmark = pytest.mark.slow

FAST = ("--monitoring-interval-critical", "200", "--monitoring-poll-interval-ms", "200")


@pytest.fixture(scope="module")
def pgbouncer(rel_server: ReliabilityServer) -> Iterator[PgBouncer]:
    """One stock PgBouncer (transaction mode) for the module; fails if pgbouncer is missing."""
    bouncer = PgBouncer(rel_server.port, "postgres", ADMIN_PASSWORD)
    try:
        yield bouncer
    finally:
        bouncer.close()


class Payments:
    """Payment traffic through the pooler in a background task, as the payment system sends it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.batches = 0
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _flow(self) -> None:
        conn = await asyncpg.connect(self.dsn, statement_cache_size=0)
        try:
            start = datetime.now(UTC) - timedelta(minutes=5)
            while not self.stop.is_set():
                tag = f"p{self.batches}"
                await dataset.insert(
                    conn, dataset.batch(tag, start + timedelta(seconds=self.batches))
                )
                self.batches += 1
                # Pace the traffic: a batch every 50 ms unless asked to stop.
                try:
                    async with asyncio.timeout(0.05):
                        await self.stop.wait()
                except TimeoutError:
                    pass
        finally:
            await conn.close()

    async def __aenter__(self) -> Payments:
        self.task = asyncio.create_task(self._flow())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task  # a failed insert fails the test

    async def flowing(self, at_least: int) -> None:
        """Wait until `at_least` batches went through the pooler."""
        assert self.task is not None
        task = self.task
        await until_done(
            lambda: self.batches >= at_least or task.done(), 20, "payments through the pooler"
        )
        assert not task.done(), "payments stopped"


@pytest.fixture
async def payments(pgbouncer: PgBouncer, rel_db: Database) -> AsyncIterator[Payments]:
    async with Payments(pgbouncer.dsn(rel_db.name)) as flow:
        await flow.flowing(2)
        yield flow


async def test_the_pooler_is_stock_it_refuses_a_statement_timeout_at_startup(
    pgbouncer: PgBouncer, rel_db: Database
) -> None:
    """What festmon used to send: the fixture really is a stock PgBouncer."""
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await asyncpg.connect(
            pgbouncer.dsn(rel_db.name), server_settings={"statement_timeout": "1000"}
        )


async def test_auto_mode_finds_the_pooler_on_an_unusual_port_and_goes_pooler_safe(
    pgbouncer: PgBouncer, rel_db: Database
) -> None:
    settings = load_settings({"database_url": pgbouncer.dsn(rel_db.name)}, env_file=None)
    options = ConnectOptions.from_settings(settings, pgbouncer.dsn(rel_db.name))
    assert not options.pooled and options.probe  # the DSN alone does not say "pooler"
    pool = await create_pool(options, min_size=2, max_size=4)
    try:
        assert options.pooler_safe and not options.supports_listen
        # Many statements from several connections: no prepared statement is lost or mixed up.
        counts = await asyncio.gather(
            *(pool.fetchval("SELECT count(*) FROM monitoring_events WHERE $1::int > 0", i + 1)
              for i in range(40))
        )  # fmt: skip
        assert len(set(counts)) == 1
    finally:
        await pool.close()


async def test_a_direct_connection_is_not_mistaken_for_a_pooler(rel_db: Database) -> None:
    settings = load_settings({"database_url": rel_db.tcp_dsn()}, env_file=None)
    options = ConnectOptions.from_settings(settings, rel_db.tcp_dsn())
    conn = await connect(options)
    try:
        assert not options.pooler_safe and options.supports_listen
        # On a direct connection the session carries the statement timeout (not the startup).
        assert await conn.fetchval("SHOW statement_timeout") == "30s"
    finally:
        await conn.close()


async def test_pgbouncer_true_in_the_url_is_honoured_and_never_reaches_the_server(
    pgbouncer: PgBouncer, rel_db: Database, tmp_path: Path
) -> None:
    for url in (rel_db.tcp_dsn(), pgbouncer.dsn(rel_db.name)):
        result = await run(
            "cycle", "--json", "--database-url", f"{url}?pgbouncer=true", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["success"] is True
    settings = load_settings({"database_url": f"{rel_db.tcp_dsn()}?pgbouncer=true"}, env_file=None)
    assert settings.dsn is not None
    options = ConnectOptions.from_settings(settings, settings.dsn)
    assert options.pooled and "pgbouncer" not in options.dsn


async def test_cycle_events_health_and_ack_through_the_pooler_while_payments_flow(
    pgbouncer: PgBouncer, rel_db: Database, payments: Payments, tmp_path: Path
) -> None:
    url = ("--database-url", pgbouncer.dsn(rel_db.name))
    cycle = await run("cycle", "--json", *url, cwd=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    document = json.loads(cycle.stdout)
    assert document["success"] is True and document["total_events_created"] > 0

    listed = await run("events", "--format", "json", *url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert len(events) >= document["total_events_created"]

    health = await run("health", "--json", *url, cwd=tmp_path)
    status = json.loads(health.stdout)["status"]
    assert status in {"HEALTHY", "WARNING", "CRITICAL"}, health
    assert health.returncode == {"HEALTHY": 0, "WARNING": 1, "CRITICAL": 2}[status]

    target = events[0]["event_id"]
    # MONITORING_POOLER_MODE=transaction says it outright; the result is the same.
    ack = await run(
        "ack", str(target), "--note", "checked at the bar", *url, cwd=tmp_path,
        env=environment(MONITORING_POOLER_MODE="transaction", MONITORING_OPERATOR="Maria"),
    )  # fmt: skip
    assert ack.returncode == 0, ack.stderr
    admin = await rel_db.admin()
    try:
        row = await admin.fetchrow(
            "SELECT status, acknowledged_by FROM monitoring_events WHERE event_id = $1", target
        )
    finally:
        await admin.close()
    assert row["status"] == "INVESTIGATING" and "Maria" in row["acknowledged_by"]
    assert payments.batches > 2


async def test_headless_schedulers_share_leadership_through_the_pooler(
    pgbouncer: PgBouncer, rel_db: Database, payments: Payments, tmp_path: Path
) -> None:
    async def start() -> tuple[asyncio.subprocess.Process, list[str]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "festmon_tui", "run", "--headless",
            "--database-url", pgbouncer.dsn(rel_db.name), *FAST,
            "--monitoring-lease-ttl-ms", "3000",
            cwd=tmp_path, env=environment(), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return process, []

    async def read_until(
        process: asyncio.subprocess.Process, lines: list[str], text: str, after: int = 0
    ) -> int:
        assert process.stderr is not None
        try:
            async with asyncio.timeout(30):
                while True:
                    for index in range(after, len(lines)):
                        if text in lines[index]:
                            return index
                    line = await process.stderr.readline()
                    assert line, "festmon exited:\n" + "".join(lines)
                    lines.append(line.decode())
        except TimeoutError:
            raise AssertionError(f"no {text!r} in the log:\n" + "".join(lines)) from None

    first, first_log = await start()
    second: asyncio.subprocess.Process | None = None
    second_log: list[str] = []
    try:
        await read_until(first, first_log, "leader: acquired term")
        await read_until(first, first_log, "job critical ok")
        second, second_log = await start()  # started once the first leads: it must follow
        await read_until(second, second_log, "database connected")
        first.send_signal(signal.SIGTERM)  # releases the lease: the second takes over
        await asyncio.wait_for(first.wait(), 10)
        took = await read_until(second, second_log, "leader: acquired term")
        await read_until(second, second_log, "job critical ok", took)
    finally:
        processes = [p for p in (first, second) if p is not None]
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        rests = [await asyncio.wait_for(p.communicate(), 10) for p in processes]
    logs = "".join(first_log + second_log) + "".join(r[1].decode() for r in rests)
    assert all(p.returncode == 0 for p in processes) and len(processes) == 2, logs
    assert "leader: acquired term" not in "".join(second_log[:took]), logs  # it followed first
    assert "Traceback" not in logs and "prepared statement" not in logs, logs
    admin = await rel_db.admin()
    try:
        runs = await admin.fetchval("SELECT count(*) FROM monitoring_cycle_runs")
        detected = await admin.fetchval("SELECT count(*) FROM monitoring_events")
    finally:
        await admin.close()
    assert runs > 0 and detected > 1


async def test_the_dashboard_works_through_the_pooler_while_payments_flow(
    pgbouncer: PgBouncer, rel_db: Database, payments: Payments
) -> None:
    dsn = pgbouncer.dsn(rel_db.name)
    settings = load_settings(
        {"database_url": dsn, "monitoring_poll_interval_ms": 200, "monitoring_operator": "Maria",
         "monitoring_interval_critical": 200},
        env_file=None,
    )  # fmt: skip
    service = PostgresMonitorService(settings, ConnectOptions.from_settings(settings, dsn))
    app = make_app(service, startup=service.start)
    admin = await rel_db.admin()
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            # The scheduler runs through the pooler and its events reach the list by polling.
            await until(pilot, lambda: len(event_ids(app)) > 0, timeout_s=20)
            assert service.state.live_updates == "poll"
            first = event_ids(app)[0]
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, EventDetailScreen)
            await pilot.press("a")
            await settle(pilot)

            async def acknowledged() -> bool:
                status = await admin.fetchval(
                    "SELECT status FROM monitoring_events WHERE event_id = $1", first
                )
                return bool(status == "INVESTIGATING")

            await until_done(acknowledged, 10, "the acknowledgement to reach the database")
    finally:
        await admin.close()
        await service.stop()
    assert payments.batches > 2


async def test_a_startup_parameter_the_pooler_refuses_ends_in_one_line_naming_the_setting(
    pgbouncer: PgBouncer, rel_db: Database, tmp_path: Path
) -> None:
    # asyncpg sends unknown URL parameters as server settings; a stock PgBouncer refuses them.
    url = f"{pgbouncer.dsn(rel_db.name)}?statement_timeout=1000"
    result = await run("cycle", "--database-url", url, cwd=tmp_path)
    message = assert_clean_failure(result)
    assert len(message.splitlines()) == 1, message
    assert "unsupported startup parameter" in message and "MONITORING_POOLER_MODE" in message


async def test_a_prepared_statement_mixed_up_by_a_pooler_names_the_setting(
    rel_db: Database,
) -> None:
    """The error a transaction pooler causes when prepared statements are cached anyway."""
    conn = await asyncpg.connect(rel_db.tcp_dsn())
    try:
        await conn.execute('PREPARE "__asyncpg_stmt_1__" AS SELECT 1')
        with pytest.raises(DatabaseRefused) as refused, translated():
            await conn.execute('PREPARE "__asyncpg_stmt_1__" AS SELECT 1')
    finally:
        await conn.close()
    message = str(refused.value)
    assert 'prepared statement "__asyncpg_stmt_1__" already exists' in message
    assert "MONITORING_POOLER_MODE=transaction" in message and "\n" not in message


async def test_through_the_pooler_a_statement_is_still_bounded_and_cancelled_at_the_server(
    pgbouncer: PgBouncer, rel_db: Database
) -> None:
    """No session timeout through a pooler: the client's bound cancels the statement instead."""
    settings = load_settings(
        {"database_url": pgbouncer.dsn(rel_db.name), "monitoring_statement_timeout_ms": 200},
        env_file=None,
    )
    options = ConnectOptions.from_settings(settings, pgbouncer.dsn(rel_db.name))
    pool = await create_pool(options, min_size=1, max_size=1)
    admin = await rel_db.admin()
    try:
        with pytest.raises(DatabaseUnavailable), translated():
            await pool.execute("SELECT pg_sleep(30)")

        async def cancelled() -> bool:
            count: int = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
            )
            return count == 0

        await until_done(cancelled, 5, "the cancel request to reach the server through the pooler")
    finally:
        await admin.close()
        pool.terminate()


async def test_db_migrate_and_status_work_through_the_pooler(
    pgbouncer: PgBouncer, rel_db: Database, tmp_path: Path
) -> None:
    url = ("--database-url", pgbouncer.dsn(rel_db.name))
    for command in (("db", "migrate"), ("status", "--json")):
        result = await run(*command, *url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_pgbouncer_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a skip: without the binary the pooler tests fail and say how to install it."""
    monkeypatch.setattr(pgbouncer_module.shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(RuntimeError, match=r"pgbouncer is not installed: `apt-get install"):
        pgbouncer_module.pgbouncer_binary()


async def test_a_database_that_stops_behind_the_pooler_is_shown_unavailable_then_recovers(
    rel_server: ReliabilityServer, rel_db: Database
) -> None:
    """Through a pooler a stopped database is no reset but a wait: PgBouncer queues the query
    (up to its query_wait_timeout, 120 s) while it retries the login. The state must still say
    UNAVAILABLE within the connect timeout, not after the 30 s statement timeout."""
    # Its own pooler, since it will wait for the server. server_login_retry is 15 s in the stock
    # configuration: how long PgBouncer waits before logging in again after a failure. 1 s here
    # only keeps the recovery part of this test short; festmon's side does not depend on it.
    bouncer = PgBouncer(
        rel_server.port, "postgres", ADMIN_PASSWORD, extra=(("server_login_retry", "1"),)
    )
    dsn = bouncer.dsn(rel_db.name)
    settings = load_settings(
        {"database_url": dsn, "monitoring_poll_interval_ms": 200,
         "monitoring_connect_timeout_ms": 1000},
        env_file=None,
    )  # fmt: skip
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), run_scheduler=False
    )
    try:
        await service.start()
        assert await service.wait_connected(10)
        await asyncio.to_thread(rel_server.stop)
        stopped = time.monotonic()
        await until_done(
            lambda: service.state.connection is ConnectionState.UNAVAILABLE,
            10,
            "the state to say UNAVAILABLE",
        )
        assert time.monotonic() - stopped < 1.0 + 2 * 0.2 + 1.0  # connect timeout + polls + slack
        # "no answer ... within 1 s", or PgBouncer's own refusal once its login retry failed.
        assert service.state.last_error, service.state
        await asyncio.to_thread(rel_server.start)
        # PgBouncer retries a failed server login after server_login_retry.
        await until_done(
            lambda: service.state.connection is ConnectionState.CONNECTED,
            30,
            "the state to say CONNECTED again",
        )
    finally:
        await service.stop()
        if not rel_server.running:
            await asyncio.to_thread(rel_server.start)
        bouncer.close()
