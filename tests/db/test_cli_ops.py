"""The scripting commands end to end, as a monitoring system or an operator runs them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from tests import exit_clock

REPO = Path(__file__).resolve().parents[2]
HEALTH_KEYS = {"status", "timestamp", "uptime_seconds", "system_metrics"}
METRIC_KEYS = {
    "transactions_last_hour",
    "success_rate_percent",
    "active_monitoring_events",
    "critical_events_count",
}
CYCLE_KEYS = {
    "cycle_timestamp",
    "cycle_duration_seconds",
    "total_events_created",
    "health_snapshot_id",
    "detection_results",
    "success",
}
DETECTOR_KEYS = {
    "transaction_failures",
    "balance_discrepancies",
    "duplicate_nfc_scans",
    "race_conditions",
}
UNREACHABLE = "postgresql://festmon:secret@127.0.0.1:9/festmon"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DATABASE_"))}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def festmon(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "festmon_tui", *args],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run(*args: str, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(festmon, *args, "--database-url", dsn, cwd=cwd)


async def event(conn: asyncpg.Connection, severity: str, card: str = "CARD-1") -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', $1, 'test_rule', $2)",
        severity,
        card,
    )
    return event_id


async def test_health_is_json_with_the_original_keys_and_nagios_exit_codes(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    assert (await run("cycle", dsn=db_dsn, cwd=tmp_path)).returncode == 0
    healthy = await run("health", "--json", dsn=db_dsn, cwd=tmp_path)
    doc = json.loads(healthy.stdout)
    assert healthy.returncode == 0, doc
    assert doc["status"] == "HEALTHY"
    assert HEALTH_KEYS <= doc.keys()
    assert set(doc["system_metrics"]) == METRIC_KEYS
    assert {"circuit_breaker", "scheduler", "last_detection"} <= doc.keys()

    await event(conn, "HIGH")
    warning = await run("health", dsn=db_dsn, cwd=tmp_path)
    assert (warning.returncode, warning.stdout.split(":")[0]) == (1, "WARNING")

    await event(conn, "CRITICAL", "CARD-2")
    critical = await run("health", "--json", dsn=db_dsn, cwd=tmp_path)
    assert critical.returncode == 2
    assert json.loads(critical.stdout)["system_metrics"]["critical_events_count"] == 1


async def test_health_is_unknown_with_exit_3_and_a_clear_message_when_unreachable(
    tmp_path: Path,
) -> None:
    result = await run("health", "--json", dsn=UNREACHABLE, cwd=tmp_path)
    assert result.returncode == 3
    assert json.loads(result.stdout)["status"] == "UNKNOWN"
    assert "unreachable" in result.stderr and "127.0.0.1" in result.stderr
    assert "secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_status_shows_the_configuration_in_force_and_the_scheduler_state(
    db_dsn: str, tmp_path: Path
) -> None:
    result = await run(
        "status", "--json", "--monitoring-interval-critical", "15000", dsn=db_dsn, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"service", "version", "environment", "config"} <= doc.keys()
    assert doc["service"] == "festmon"
    assert doc["config"] == {
        "intervals": {
            "critical_checks": 15000,
            "medium_checks": 120000,
            "health_checks": 300000,
            "cleanup": 3600000,
        },
        "circuit_breaker": {
            "failure_threshold": 5,
            "recovery_timeout_ms": 60000,
            "half_open_max_calls": 2,
            "timeout_ms": 30000,
        },
    }
    assert [job["name"] for job in doc["scheduler"]["jobs"]] == [
        "critical",
        "medium",
        "health",
        "cleanup",
    ]
    assert doc["scheduler"]["circuit_breaker"]["state"] == "CLOSED"


async def test_cycle_prints_the_cycle_document(db_dsn: str, tmp_path: Path) -> None:
    result = await run("cycle", "--json", dsn=db_dsn, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert CYCLE_KEYS <= doc.keys()
    assert set(doc["detection_results"]) == DETECTOR_KEYS
    assert doc["success"] is True and doc["cycle_duration_seconds"] > 0


async def test_events_are_exported_literally_as_json_and_csv_and_escaped_in_the_table(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    hostile = 'CARD-\x1b[31m"=1+1",\n[b]x[/b]'
    await event(conn, "CRITICAL", hostile)
    await event(conn, "MEDIUM", "CARD-OTHER")

    as_json = await run("events", "--severity", "critical", "--format", "json",
                        dsn=db_dsn, cwd=tmp_path)  # fmt: skip
    rows = json.loads(as_json.stdout)
    assert [r["card_id"] for r in rows] == [hostile]

    as_csv = await run("events", "--type", "balance_discrepancy", "--format", "csv",
                       dsn=db_dsn, cwd=tmp_path)  # fmt: skip
    records = list(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))
    assert {r["card_id"] for r in records} == {hostile, "CARD-OTHER"}

    table = await run("events", "--search", "CARD-", dsn=db_dsn, cwd=tmp_path)
    assert "\x1b" not in table.stdout and "\\x1b[31m" in table.stdout
    assert table.stdout.rstrip().endswith("2 event(s)")


async def test_lifecycle_commands_act_with_the_audited_identity_and_report_refusals(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    event_id = await event(conn, "CRITICAL")
    ack = await asyncio.to_thread(
        festmon, "ack", str(event_id), "--note", "looking", "--database-url", db_dsn,
        cwd=tmp_path, env=environment(MONITORING_OPERATOR="Bob", SSH_CLIENT="198.51.100.4 1 22"),
    )  # fmt: skip
    assert ack.returncode == 0, ack.stderr
    assert "INVESTIGATING" in ack.stdout
    again = await run("ack", str(event_id), dsn=db_dsn, cwd=tmp_path)
    assert again.returncode == 1 and "INVESTIGATING" in again.stderr
    unack = await run("unack", str(event_id), dsn=db_dsn, cwd=tmp_path)
    assert unack.returncode == 0, unack.stderr
    fp = await run("false-positive", str(event_id), "--note", "test card", dsn=db_dsn, cwd=tmp_path)
    assert fp.returncode == 0, fp.stderr
    actor = json.loads(
        await conn.fetchval(
            "SELECT actor FROM monitoring_event_actions WHERE event_id = $1 ORDER BY action_id",
            event_id,
        )
    )
    assert (actor["operator"], actor["ssh_client"]) == ("Bob", "198.51.100.4")


async def test_bad_input_is_one_line_with_the_right_exit_code(db_dsn: str, tmp_path: Path) -> None:
    no_note = await run("resolve", "1", dsn=db_dsn, cwd=tmp_path)
    bad_id = await run("ack", "abc", dsn=db_dsn, cwd=tmp_path)
    bad_severity = await run("events", "--severity", "urgent", dsn=db_dsn, cwd=tmp_path)
    bad_since = await run("events", "--since", "yesterday-ish", dsn=db_dsn, cwd=tmp_path)
    bad_setting = await run("status", "--monitoring-interval-critical", "-5", dsn=db_dsn,
                            cwd=tmp_path)  # fmt: skip
    # health is what monitoring systems run: a setting it cannot use is UNKNOWN (3), not 2,
    # which Nagios reads as CRITICAL.
    health_bad_setting = await run("health", "--monitoring-interval-critical", "-5", dsn=db_dsn,
                                   cwd=tmp_path)  # fmt: skip
    for result in (no_note, bad_id, bad_severity, bad_since, bad_setting, health_bad_setting):
        expected = 3 if result is health_bad_setting else 2
        assert result.returncode == expected, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert "MONITORING_INTERVAL_CRITICAL" in bad_setting.stderr
    assert "MONITORING_INTERVAL_CRITICAL" in health_bad_setting.stderr
    missing = await run("ack", "424242", dsn=db_dsn, cwd=tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def start_headless(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`festmon run --headless`, its exit timed into cwd/exit-record (see tests/exit_clock.py)."""
    return subprocess.Popen(
        exit_clock.command("run", "--headless",
         "--monitoring-interval-critical", "500", "--monitoring-lease-ttl-ms", "3000", *args),
        cwd=cwd, env={**env, exit_clock.RECORD_ENV: str(cwd / "exit-record")},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def read_until(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> list[str]:
    """stderr lines up to the first containing `needle` (fails after timeout_s)."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not logged: {lines}")


def stop_within(proc: subprocess.Popen[str], signum: int, limit_s: float, cwd: Path) -> float:
    """Signal the headless scheduler; it must exit cleanly within limit_s of its own time."""
    since = exit_clock.mark(proc.pid)
    proc.send_signal(signum)
    try:
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = exit_clock.own_seconds(cwd / "exit-record", since)
    assert proc.returncode == 0 and took < limit_s, (proc.returncode, took)
    return took


async def test_run_headless_logs_each_job_and_releases_the_lease_on_sigterm(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    proc = start_headless("--database-url", db_dsn, cwd=tmp_path, env=environment())
    lines = await asyncio.to_thread(read_until, proc, "job critical ok", 20)
    assert any("acquired term" in line for line in lines)
    await asyncio.to_thread(stop_within, proc, signal.SIGTERM, 2.0, tmp_path)
    holder = await conn.fetchval("SELECT holder_id FROM monitoring_scheduler_lease")
    assert holder is None


@pytest.mark.slow
def test_run_headless_on_the_embedded_default_stops_its_server_on_sighup(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tmp_path.chmod(0o755)
    env = environment(MONITORING_DATA_DIR=str(data_dir / "pgdata"))
    migrate = festmon("db", "migrate", "--with-payment-schema", cwd=tmp_path, env=env)
    assert migrate.returncode == 0, migrate.stderr
    proc = start_headless(cwd=tmp_path, env=env)
    read_until(proc, "job critical ok", 30)
    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    stop_within(proc, signal.SIGHUP, 2.0, tmp_path)
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == "zombie"
