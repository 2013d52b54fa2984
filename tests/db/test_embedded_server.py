"""The embedded default: shared, repaired when stale, stopped on exit and on signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import psutil
import pytest

from festmon_tui.cli.ui_commands import SHUTDOWN_S, _close
from festmon_tui.db.embedded import EmbeddedServer, handle_pids, repair_data_dir
from festmon_tui.db.target import open_target
from festmon_tui.settings import load_settings


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="festmon-emb-"))
    base.chmod(0o755)
    yield base / "pgdata"
    _force_stop(base / "pgdata")


def _postmaster_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0]) if pidfile.exists() else None


def _force_stop(pgdata: Path) -> None:
    pid = _postmaster_pid(pgdata)
    if pid and psutil.pid_exists(pid):
        proc = psutil.Process(pid)
        if proc.name().startswith("postgres"):
            proc.terminate()
            proc.wait(10)


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def _festmon(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MONITORING_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "festmon_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_the_embedded_server_starts_serves_a_festmon_database_and_stops(
    data_dir: Path,
) -> None:
    server = EmbeddedServer(data_dir)
    dsn = server.start()
    pid = server.server_pid
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT current_database()") == "festmon"
    await conn.close()
    server.stop()
    assert not _running(pid)


def test_two_processes_share_one_server_and_the_last_one_out_stops_it(data_dir: Path) -> None:
    first = _festmon("db", "serve", data_dir=data_dir)
    assert first.stdout is not None
    assert "ready" in first.stdout.readline()
    pid = _postmaster_pid(data_dir)
    second = _festmon("db", "serve", data_dir=data_dir)
    assert second.stdout is not None
    assert "ready" in second.stdout.readline()
    assert _postmaster_pid(data_dir) == pid
    first.send_signal(signal.SIGTERM)
    first.wait(10)
    assert _running(pid), "the server must outlive the first of two users"
    second.send_signal(signal.SIGHUP)
    second.wait(10)
    assert not _running(pid)
    assert handle_pids(data_dir) == []


def test_sigterm_stops_the_embedded_server_within_two_seconds(data_dir: Path) -> None:
    proc = _festmon("db", "serve", data_dir=data_dir)
    assert proc.stdout is not None
    assert "ready" in proc.stdout.readline()
    pid = _postmaster_pid(data_dir)
    proc.send_signal(signal.SIGTERM)
    proc.wait(2)
    assert not _running(pid)


def test_a_killed_owner_leaves_a_stale_pid_that_the_next_festmon_removes(data_dir: Path) -> None:
    proc = _festmon("db", "serve", data_dir=data_dir)
    assert proc.stdout is not None
    assert "ready" in proc.stdout.readline()
    pid = _postmaster_pid(data_dir)
    proc.kill()
    proc.wait(10)
    assert proc.pid in handle_pids(data_dir), "SIGKILL cannot clean up: the pid stays behind"

    server = EmbeddedServer(data_dir)
    server.start()
    assert proc.pid in server.repair.removed_handle_pids
    assert server.server_pid == pid, "the orphaned server is reused, not restarted"
    server.stop()
    assert not _running(pid), "the last live festmon stops the orphaned server"


def test_a_postmaster_pid_reused_by_another_process_does_not_fool_startup(
    data_dir: Path,
) -> None:
    server = EmbeddedServer(data_dir)
    server.start()
    server.stop()
    impostor = subprocess.Popen(["sleep", "60"])
    try:
        # After a reboot the recorded pid may belong to anything: simulate with a live `sleep`.
        (data_dir / "postmaster.pid").write_text(
            f"{impostor.pid}\n{data_dir}\n1700000000\n5432\n{data_dir}\n\n  0 0\nready\n"
        )
        second = EmbeddedServer(data_dir)
        dsn = second.start()
        assert second.repair.removed_postmaster_pid == impostor.pid
        assert asyncio.run(_select_one(dsn)) == 1
        second.stop()
    finally:
        impostor.kill()
        impostor.wait()


def test_repair_leaves_a_healthy_data_dir_alone(tmp_path: Path) -> None:
    (tmp_path / ".handle_pids.json").write_text(f"[{os.getpid()}]")
    repair = repair_data_dir(tmp_path)
    assert repair.removed_handle_pids == ()
    assert repair.removed_postmaster_pid is None
    assert handle_pids(tmp_path) == [os.getpid()]


async def _setting(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT current_setting($1)", name))
    finally:
        await conn.close()


def test_the_embedded_server_checkpoints_every_30_s_so_its_shutdown_checkpoint_stays_small(
    data_dir: Path,
) -> None:
    # A hang-up waits for the shutdown checkpoint; with the default 5 min it wrote all of
    # shared_buffers under the demo's writes (2.4 s). The setting survives a restart.
    for _ in range(2):
        server = EmbeddedServer(data_dir)
        dsn = server.start()
        assert asyncio.run(_setting(dsn, "checkpoint_timeout")) == "30s"
        assert asyncio.run(_setting(dsn, "checkpoint_completion_target")) == "0.9"
        server.stop()


def _wait_stopped(pid: int | None, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_stop_request_without_waiting_stops_the_server_only_when_no_other_festmon_uses_it(
    data_dir: Path,
) -> None:
    server = EmbeddedServer(data_dir)
    server.start()
    pid = server.server_pid
    other = _festmon("db", "serve", data_dir=data_dir)
    try:
        assert other.stdout is not None
        assert "ready" in other.stdout.readline()
        assert server.request_stop() is False, "another festmon still uses the server"
        assert _running(pid)
    finally:
        other.kill()  # gone without cleaning up: a dead pid stays in the handle list
        other.wait(10)
    assert server.request_stop() is True
    assert _wait_stopped(pid), "the server must stop once its last user asked"
    server.stop()  # releasing the handle afterwards is harmless
    assert not _running(pid)


async def _requested_checkpoints(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT num_requested FROM pg_stat_checkpointer"))
    finally:
        await conn.close()


def test_the_last_user_starts_the_shutdown_checkpoint_early_and_a_shared_server_is_left_alone(
    data_dir: Path,
) -> None:
    server = EmbeddedServer(data_dir)
    dsn = server.start()
    other = _festmon("db", "serve", data_dir=data_dir)
    try:
        assert other.stdout is not None
        assert "ready" in other.stdout.readline()
        assert server.checkpoint_in_background() is None, "another festmon still uses it"
    finally:
        other.kill()
        other.wait(10)
    before = asyncio.run(_requested_checkpoints(dsn))
    thread = server.checkpoint_in_background()
    assert thread is not None
    thread.join(30)
    assert not thread.is_alive()
    assert asyncio.run(_requested_checkpoints(dsn)) == before + 1
    server.stop()


async def test_a_dashboard_whose_closing_is_stuck_still_stops_its_embedded_server(
    data_dir: Path,
) -> None:
    # A hang-up under load: closing the traffic and the service has not reached the server
    # when the shutdown time is up. The server must not outlive festmon all the same.
    settings = load_settings(
        {"database_url": None, "monitoring_data_dir": str(data_dir)}, env_file=None
    )
    stack = AsyncExitStack()
    target = await stack.enter_async_context(open_target(settings))
    assert target.embedded is not None
    pid = target.embedded.server_pid
    stuck = asyncio.Event()  # never set: a close waiting on a stalled connection
    stack.push_async_callback(stuck.wait)
    started = time.monotonic()
    await _close(stack, None)
    assert time.monotonic() - started < SHUTDOWN_S + 1.0
    assert await asyncio.to_thread(_wait_stopped, pid), "the server outlived its last user"
    assert not stuck.is_set()


async def test_db_serve_demo_prints_the_demos_database_so_health_reads_what_the_demo_shows(
    data_dir: Path,
) -> None:
    """`festmon health` next to a running demo: the demo's database is festmon_demo, not the
    embedded server's festmon; `festmon db serve --demo` prints its address (issue 15.3)."""
    from festmon_tui.db.migrations import migrate
    from festmon_tui.db.simulation.demo import prepare_demo_database

    proc = _festmon("db", "serve", "--demo", data_dir=data_dir)
    try:
        assert proc.stdout is not None
        ready = await asyncio.to_thread(proc.stdout.readline)
        assert ready.startswith("festmon demo's database (festmon_demo) ready: postgresql://")
        dsn = ready.split(": ", 1)[1].strip()
        hint = await asyncio.to_thread(proc.stdout.readline)
        assert hint.strip() == f"for festmon health/events/psql: export DATABASE_URL='{dsn}'"
        assert proc.stderr is not None  # every command says when it uses the embedded server
        said = await asyncio.to_thread(proc.stderr.readline)
        assert said.startswith("festmon: no DATABASE_URL or PG* variables: using the embedded")
        # What `festmon demo` does to it: a fresh festmon_demo with both schemas, and an event.
        admin = dsn.replace("/festmon_demo", "/festmon", 1)
        assert await prepare_demo_database(admin) == dsn
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, with_payment_schema=True)
            await conn.fetchval(
                "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'r', 'CARD-D')"
            )
        finally:
            await conn.close()
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        events = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "festmon_tui", "events", "--format", "csv"],
            env={**env, "DATABASE_URL": dsn},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert events.returncode == 0, events.stderr
        assert "CARD-D" in events.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 10)
