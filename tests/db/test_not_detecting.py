"""Not detecting is loud (issue 13.3): a missing schema, a rule failing on every run, and no
scheduler for several intervals are named, with their fix, by the service and `festmon health`."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from festmon_tui.db.migrations import migrate
from festmon_tui.models import DetectionAlarmKind, HealthStatus
from festmon_tui.service.documents import health_document
from tests.db.test_cli_ops import environment, read_until, run, start_headless, stop_within
from tests.db.test_monitoring_schema import ORIGINAL_PHASE4
from tests.db.test_service import eventually, service_for

CYCLE = "SELECT run_monitoring_detection_cycle()"


async def _cycle_as_writer(conn: asyncpg.Connection) -> dict[str, object]:
    await conn.execute("SET ROLE monitoring_writer")
    try:
        result: dict[str, object] = json.loads(await conn.fetchval(CYCLE))
    finally:
        await conn.execute("RESET ROLE")
    return result


async def test_health_on_a_database_without_the_schema_is_unknown_and_says_run_migrate(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    result = await run("health", "--json", dsn=empty_db_dsn, cwd=tmp_path)

    doc = json.loads(result.stdout)
    assert result.returncode == 3, result.stderr
    assert doc["status"] == "UNKNOWN"
    assert doc["reasons"] == ["schema missing — run festmon db migrate"]
    assert doc["detection"]["detecting"] is False
    assert [a["kind"] for a in doc["detection"]["alarms"]] == ["SCHEMA_MISSING"]
    assert "Traceback" not in result.stderr


async def test_the_original_database_before_migrate_is_named_as_such(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await conn.execute(ORIGINAL_PHASE4)
    finally:
        await conn.close()

    result = await run("health", dsn=empty_db_dsn, cwd=tmp_path)

    assert result.returncode == 3
    assert result.stdout.strip() == (
        "UNKNOWN: festmon schema missing (only the original's monitoring tables)"
        " — run festmon db migrate"
    )


async def test_the_service_state_says_schema_missing_while_connected(
    empty_db_dsn: str,
) -> None:
    service = service_for(empty_db_dsn, run_scheduler=False)
    await service.start()
    try:
        await eventually(lambda: service.state.detection_alarms)
        state = service.state
        assert state.connection == "CONNECTED"
        assert state.health_status is HealthStatus.UNKNOWN
        (alarm,) = state.detection_alarms
        assert alarm.kind is DetectionAlarmKind.SCHEMA_MISSING
        assert alarm.message == "schema missing — run festmon db migrate"

        # Migrated while the dashboard watches: the alarm goes away by itself.
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await migrate(conn, with_payment_schema=True)
            await conn.fetchval(CYCLE)
        finally:
            await conn.close()
        await eventually(lambda: service.state.health_status is HealthStatus.HEALTHY)
        assert service.state.detection_alarms == ()
    finally:
        await service.stop()


async def test_a_rule_failing_on_every_run_is_critical_and_named_with_its_reason(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("REVOKE SELECT ON nfc_scan_log FROM monitoring_writer")
    await _cycle_as_writer(conn)
    once = await conn.fetchrow("SELECT * FROM monitoring_rule_failures")
    assert once is not None and once["consecutive_failures"] == 1
    # One failed run is bad luck (a lock timeout), not yet "failing": no alarm.
    single = json.loads((await run("health", "--json", dsn=db_dsn, cwd=tmp_path)).stdout)
    assert not single["detection"]["alarms"]

    await _cycle_as_writer(conn)

    failing = await conn.fetchrow("SELECT * FROM monitoring_rule_failures")
    assert failing["algorithm"] == "temporal_duplicate_detection"
    assert failing["consecutive_failures"] == 2
    assert failing["failing_since"] == once["failing_since"]
    since: datetime = failing["failing_since"].astimezone(ZoneInfo("Europe/Brussels"))
    result = await run("health", "--json", dsn=db_dsn, cwd=tmp_path)
    doc = json.loads(result.stdout)
    assert result.returncode == 2
    assert doc["status"] == "CRITICAL"
    assert doc["reasons"][0] == (
        f"rule temporal_duplicate_detection failing since {since:%H:%M}:"
        " permission denied for table nfc_scan_log"
    )
    assert [a["kind"] for a in doc["detection"]["alarms"]] == ["RULE_FAILING"]

    # Repaired: the next successful run clears it.
    await conn.execute("GRANT SELECT ON nfc_scan_log TO monitoring_writer")
    assert (await _cycle_as_writer(conn))["success"] is True
    assert await conn.fetchval("SELECT count(*) FROM monitoring_rule_failures") == 0
    healthy = await run("health", "--json", dsn=db_dsn, cwd=tmp_path)
    assert (healthy.returncode, json.loads(healthy.stdout)["status"]) == (0, "HEALTHY")


async def test_no_scheduler_for_several_intervals_is_critical(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.fetchval(CYCLE)
    # The last rule ran ten minutes ago, nobody holds the lease.
    await conn.execute(
        "UPDATE monitoring_detector_watermarks SET last_examined_at = now() - interval '10 minutes'"
    )

    result = await run("health", "--json", dsn=db_dsn, cwd=tmp_path)
    status = await run("status", "--json", dsn=db_dsn, cwd=tmp_path)

    doc = json.loads(result.stdout)
    assert result.returncode == 2
    assert doc["status"] == "CRITICAL"
    assert doc["reasons"][0].startswith("no scheduler has run for 10 min — start festmon")
    assert [a["kind"] for a in doc["detection"]["alarms"]] == ["NOT_SCHEDULED"]
    assert json.loads(status.stdout)["detection"] == doc["detection"]


async def test_a_freshly_started_scheduler_is_not_reported_as_missing(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("UPDATE monitoring_settings SET initialized_at = now() - interval '1 d'")
    finally:
        await conn.close()
    service = service_for(db_dsn)
    await service.start()
    try:
        await eventually(lambda: service.state.last_detection_at is not None)
        await eventually(lambda: service.state.leader and service.state.leader.is_self)
        assert not service.state.detection_alarms
        document = health_document(service.state, service.state.refreshed_at)  # type: ignore[arg-type]
        assert document["detection"] == {"detecting": True, "alarms": []}
    finally:
        await service.stop()


async def test_rules_failing_for_one_reason_are_one_alarm(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate(conn)  # festmon's schema, and no payment tables to watch
        for _ in range(2):
            await conn.fetchval(CYCLE)
        since = await conn.fetchval("SELECT min(failing_since) FROM monitoring_rule_failures")
    finally:
        await conn.close()
    at = since.astimezone(ZoneInfo("Europe/Brussels"))

    result = await run("health", "--json", dsn=empty_db_dsn, cwd=tmp_path)

    doc = json.loads(result.stdout)
    assert result.returncode == 2
    assert doc["reasons"] == [
        f"6 rules failing since {at:%H:%M}: payment table app_transaction_log is missing"
        " (balance_deduction_on_failure, consecutive_failures, system_failure_spike,"
        " balance_chain_break, balance_mismatch_detection, concurrent_transaction_detection)",
        f"rule negative_balance_detection failing since {at:%H:%M}:"
        ' relation "table_cards" does not exist',
        f"rule temporal_duplicate_detection failing since {at:%H:%M}:"
        " payment table nfc_scan_log is missing",
    ]


async def test_status_on_a_database_without_the_schema_fails_with_the_fix(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    result = await run("status", dsn=empty_db_dsn, cwd=tmp_path)

    assert result.returncode == 1
    assert "schema missing — run festmon db migrate" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_schema_older_than_festmon_says_run_migrate(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    # As a database migrated by an earlier festmon (before V0013) looks to this one.
    await conn.execute("DROP TABLE monitoring_rule_failures CASCADE")

    result = await run("health", dsn=db_dsn, cwd=tmp_path)

    assert result.returncode == 3
    assert result.stdout.strip() == "UNKNOWN: schema out of date — run festmon db migrate"


async def test_the_headless_scheduler_logs_not_detecting_with_the_fix_and_when_it_resumes(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    proc = start_headless("--database-url", empty_db_dsn, cwd=tmp_path, env=environment())
    try:
        lines = await asyncio.to_thread(
            read_until, proc, "NOT DETECTING: schema missing — run festmon db migrate", 30
        )
        assert not any("database unavailable" in line for line in lines), lines

        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await migrate(conn, with_payment_schema=True)
        finally:
            await conn.close()
        await asyncio.to_thread(read_until, proc, "detecting again", 30)
    finally:
        await asyncio.to_thread(stop_within, proc, signal.SIGTERM, 2.0, tmp_path)
