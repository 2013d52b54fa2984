"""The monitoring schema: migration, upgrade from the original, roles, settings, views, claims."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from festmon_tui.db.migrations import migrate
from festmon_tui.resources import migrations_dir

PAYMENT_TABLES = ("table_cards", "app_transaction_log", "nfc_scan_log")
MONITORING_RELATIONS = (
    "monitoring_events",
    "system_health_snapshots",
    "alert_history",
    "monitoring_event_actions",
    "monitoring_detector_watermarks",
    "monitoring_settings",
    "monitoring_scheduler_lease",
    "monitoring_cycle_runs",
    "monitoring_critical_claim",
    "monitoring_dashboard_summary",
    "system_health_trend",
)
WRITER_FUNCTIONS = (
    "detect_transaction_failures()",
    "detect_balance_discrepancies()",
    "detect_duplicate_nfc_scans()",
    "detect_race_conditions()",
    "update_system_health_snapshot()",
    "run_monitoring_detection_cycle()",
    "run_critical_detection()",
    "run_medium_detection()",
    "refresh_monitoring_views()",
    "cleanup_monitoring_data(integer)",
    "escalate_monitoring_alerts()",
    "create_monitoring_event(text,text,text,text,uuid,numeric,numeric,jsonb,jsonb)",
    "acknowledge_monitoring_event(bigint,jsonb,text)",
    "unacknowledge_monitoring_event(bigint,jsonb,text)",
    "resolve_monitoring_event(bigint,jsonb,text)",
    "mark_monitoring_event_false_positive(bigint,jsonb,text)",
    "add_monitoring_event_note(bigint,jsonb,text)",
    "claim_monitoring_cycle_run(text,text,interval,text,integer)",
    "finish_monitoring_cycle_run(bigint,jsonb,text)",
)


@pytest.fixture
async def empty(empty_db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _seed_counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await conn.fetchval(
            "SELECT count(*) FROM monitoring_events WHERE event_type = 'system_health'"
            " AND severity = 'INFO' AND detection_algorithm = 'system_initialization'"
        ),
        await conn.fetchval("SELECT count(*) FROM monitoring_events"),
        await conn.fetchval("SELECT count(*) FROM system_health_snapshots"),
    )


async def test_the_first_migration_seeds_one_event_and_one_snapshot_and_a_second_adds_nothing(
    empty: asyncpg.Connection,
) -> None:
    await migrate(empty, with_payment_schema=True)
    assert await _seed_counts(empty) == (1, 1, 1)
    snapshot_status = await empty.fetchval(
        "SELECT overall_health_status FROM system_health_snapshots"
    )
    assert snapshot_status == "HEALTHY"

    assert await migrate(empty, with_payment_schema=True) == []

    assert await _seed_counts(empty) == (1, 1, 1)


async def test_reapplying_the_repeatable_files_keeps_grants_security_and_data(
    conn: asyncpg.Connection,
) -> None:
    for path in sorted((migrations_dir() / "monitoring").glob("R__*.sql")):
        await conn.execute(path.read_text())
    await conn.execute("SELECT festmon_after_migrate()")

    assert await _seed_counts(conn) == (1, 1, 1)
    for function in WRITER_FUNCTIONS:
        assert await conn.fetchval(
            "SELECT has_function_privilege('monitoring_writer', $1, 'EXECUTE')", function
        ), function
        assert not await conn.fetchval(
            "SELECT has_function_privilege('monitoring_reader', $1, 'EXECUTE')", function
        ), function
    definers = await conn.fetch(
        "SELECT proname FROM pg_proc WHERE prosecdef AND proname IN"
        " ('refresh_monitoring_views', 'cleanup_monitoring_data') ORDER BY 1"
    )
    assert [r["proname"] for r in definers] == [
        "cleanup_monitoring_data",
        "refresh_monitoring_views",
    ]


async def test_the_monitoring_schema_applies_without_payment_tables_and_says_what_is_missing(
    empty: asyncpg.Connection,
) -> None:
    await migrate(empty, with_payment_schema=False)

    assert await _seed_counts(empty) == (1, 1, 1)
    snapshot = await empty.fetchrow("SELECT * FROM system_health_snapshots")
    assert snapshot["overall_health_status"] == "UNKNOWN"
    assert "payment tables missing" in json.loads(snapshot["status_reasons"])[0]
    cycle = json.loads(await empty.fetchval("SELECT run_monitoring_detection_cycle()"))
    assert cycle["success"] is False
    assert cycle["total_events_created"] == 0
    errors = {e["algorithm"]: e["error"] for e in cycle["errors"] if e["algorithm"]}
    assert errors["balance_deduction_on_failure"] == "payment table app_transaction_log is missing"
    assert errors["temporal_duplicate_detection"] == "payment table nfc_scan_log is missing"

    # The payment tables arrive later: the next migrate grants SELECT on them, seeds nothing.
    await migrate(empty, with_payment_schema=True)

    for table in PAYMENT_TABLES:
        for role in ("monitoring_writer", "monitoring_reader"):
            assert await empty.fetchval("SELECT has_table_privilege($1, $2, 'SELECT')", role, table)
    assert await _seed_counts(empty) == (1, 1, 2)  # the cycle above took a snapshot
    assert json.loads(await empty.fetchval("SELECT run_monitoring_detection_cycle()"))["success"]


async def test_the_writer_may_only_read_payment_tables(conn: asyncpg.Connection) -> None:
    for table in (*PAYMENT_TABLES, "bar_orders", "recharges", "idempotency_keys"):
        assert await conn.fetchval(
            "SELECT has_table_privilege('monitoring_writer', $1, 'SELECT')", table
        )
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert not await conn.fetchval(
                "SELECT has_table_privilege('monitoring_writer', $1, $2)", table, privilege
            ), (table, privilege)


async def test_the_reader_may_only_read_monitoring_relations(conn: asyncpg.Connection) -> None:
    for relation in MONITORING_RELATIONS:
        assert await conn.fetchval(
            "SELECT has_table_privilege('monitoring_reader', $1, 'SELECT')", relation
        ), relation
        for privilege in ("INSERT", "UPDATE", "DELETE"):
            assert not await conn.fetchval(
                "SELECT has_table_privilege('monitoring_reader', $1, $2)", relation, privilege
            ), (relation, privilege)
    assert await conn.fetchval(
        "SELECT has_function_privilege('monitoring_writer', 'detect_transaction_failures()',"
        " 'EXECUTE')"
    )
    assert not await conn.fetchval(
        "SELECT has_table_privilege('monitoring_writer', 'monitoring_event_actions', 'UPDATE')"
    )


async def test_the_settings_row_holds_the_spec_defaults(conn: asyncpg.Connection) -> None:
    settings = await conn.fetchrow("SELECT * FROM monitoring_settings")

    assert settings["id"] == 1
    assert settings["consecutive_failure_count"] == 3
    assert settings["consecutive_failure_window"] == timedelta(minutes=10)
    assert settings["failure_spike_window"] == timedelta(minutes=15)
    assert settings["failure_spike_min_transactions"] == 10
    assert settings["failure_spike_rate_percent"] == Decimal("5.00")
    assert settings["failure_spike_high_rate_percent"] == Decimal("10.00")
    assert settings["discrepancy_threshold"] == Decimal("0.01")
    assert settings["duplicate_nfc_window"] == timedelta(seconds=5)
    assert settings["race_window"] == timedelta(seconds=2)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO monitoring_settings (id) VALUES (2)")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE monitoring_settings SET failure_spike_rate_percent = 101")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("'bogus', 'INFO', 'x'", "invalid event_type 'bogus'"),
        ("'system_health', 'SEVERE', 'x'", "invalid severity 'SEVERE'"),
        ("'system_health', NULL, 'x'", "invalid severity NULL"),
        ("'system_health', 'INFO', 'x', NULL, NULL, NULL, 1.01", "invalid confidence_score 1.01"),
        ("'system_health', 'INFO', 'x', NULL, NULL, NULL, -0.1", "invalid confidence_score -0.1"),
        ("'system_health', 'INFO', ' '", "invalid detection_algorithm"),
    ],
)
async def test_create_monitoring_event_rejects_bad_values_with_a_clear_error(
    conn: asyncpg.Connection, arguments: str, message: str
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
        await conn.fetchval(f"SELECT create_monitoring_event({arguments})")


async def test_create_monitoring_event_returns_the_active_event_of_the_same_problem(
    conn: asyncpg.Connection,
) -> None:
    first = await conn.fetchval(
        "SELECT create_monitoring_event('duplicate_nfc', 'LOW', 'manual', 'C1', NULL, 2.50, 0.5,"
        " '{\"n\": 1}', '{\"flag\": true}')"
    )
    again = await conn.fetchval(
        "SELECT create_monitoring_event('duplicate_nfc', 'MEDIUM', 'manual', 'C1', NULL, NULL, 0.6,"
        " '{\"n\": 2}')"
    )
    other = await conn.fetchval(
        "SELECT create_monitoring_event('duplicate_nfc', 'LOW', 'manual', 'C2')"
    )

    assert first == again != other
    event = await conn.fetchrow("SELECT * FROM monitoring_events WHERE event_id = $1", first)
    assert (event["occurrence_count"], event["severity"], event["fingerprint"]) == (
        2,
        "MEDIUM",
        "card:C1",
    )
    assert json.loads(event["event_data"]) == {"n": 2}
    assert json.loads(event["context_data"]) == {"flag": True}
    assert event["affected_amount"] == Decimal("2.50")


async def test_a_direct_insert_without_fingerprint_gets_its_own_identity(
    conn: asyncpg.Connection,
) -> None:
    event_id = await conn.fetchval(
        "INSERT INTO monitoring_events (event_type, severity, detection_algorithm)"
        " VALUES ('system_health', 'LOW', 'manual') RETURNING event_id"
    )

    assert (
        await conn.fetchval(
            "SELECT fingerprint FROM monitoring_events WHERE event_id = $1", event_id
        )
        == f"event:{event_id}"
    )


async def test_the_materialized_views_refresh_concurrently_in_utc_hours(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("SET TIME ZONE 'Europe/Brussels'")
    await conn.execute("SELECT create_monitoring_event('race_condition', 'MEDIUM', 'm', 'C1')")

    result = json.loads(await conn.fetchval("SELECT refresh_monitoring_views()"))

    assert result["success"] is True
    assert result["views_refreshed"] == ["monitoring_dashboard_summary", "system_health_trend"]
    assert result["duration_seconds"] >= 0
    hours = await conn.fetch(
        "SELECT hour, extract(minute FROM hour AT TIME ZONE 'UTC') AS minute,"
        " event_type, event_count FROM monitoring_dashboard_summary ORDER BY event_type"
    )
    assert [(r["event_type"], r["event_count"]) for r in hours] == [
        ("race_condition", 1),
        ("system_health", 1),
    ]
    assert {r["minute"] for r in hours} == {0}
    assert await conn.fetchval("SELECT total_snapshots FROM system_health_trend") == 1
    unique = await conn.fetch(
        "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indisunique"
        " AND indrelid IN ('monitoring_dashboard_summary'::regclass,"
        "                  'system_health_trend'::regclass)"
    )
    assert len(unique) == 2


async def test_a_manual_cycle_can_be_claimed_by_one_festmon_at_a_time(
    conn: asyncpg.Connection,
) -> None:
    claim = "SELECT claim_monitoring_cycle_run('manual', $1, '5 minutes', 'host-a', 42)"
    first = await conn.fetchval(claim, "alice")
    assert await conn.fetchval(claim, "bob") is None

    assert await conn.fetchval(
        "SELECT finish_monitoring_cycle_run($1, '{\"success\": true}')", first
    )
    second = await conn.fetchval(claim, "bob")
    assert second is not None

    await conn.execute(
        "UPDATE monitoring_cycle_runs SET expires_at = now() - interval '1 second'"
        " WHERE run_id = $1",
        second,
    )
    third = await conn.fetchval(claim, "carol")
    assert third is not None
    expired = await conn.fetchrow("SELECT * FROM monitoring_cycle_runs WHERE run_id = $1", second)
    assert (expired["success"], expired["error"]) == (False, "claim expired before it finished")
    assert not await conn.fetchval("SELECT finish_monitoring_cycle_run($1)", second)
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM monitoring_scheduler_lease WHERE lease_name = 'scheduler'"
        )
        == 1
    )


# The original Phase 4 objects (ORIGINAL_SYSTEM §2), as a database that ran its migration has
# them: same tables, columns, CHECKs, indexes, triggers, views and function signatures.
ORIGINAL_PHASE4 = """
CREATE TABLE monitoring_events (
    event_id BIGSERIAL PRIMARY KEY,
    event_type TEXT NOT NULL CHECK (event_type IN ('transaction_failure', 'balance_discrepancy',
        'duplicate_nfc', 'race_condition', 'system_health')),
    severity TEXT NOT NULL CHECK (severity IN ('CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO')),
    card_id TEXT,
    transaction_id UUID,
    affected_amount DECIMAL(10, 2),
    detection_timestamp TIMESTAMPTZ DEFAULT NOW(),
    detection_algorithm TEXT NOT NULL,
    confidence_score DECIMAL(3, 2) DEFAULT 1.0 CHECK (confidence_score BETWEEN 0.0 AND 1.0),
    event_data JSONB NOT NULL DEFAULT '{}',
    context_data JSONB DEFAULT '{}',
    status TEXT DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'INVESTIGATING', 'RESOLVED',
                                                 'FALSE_POSITIVE')),
    resolved_at TIMESTAMPTZ,
    resolution_notes TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE TABLE system_health_snapshots (
    snapshot_id BIGSERIAL PRIMARY KEY,
    snapshot_timestamp TIMESTAMPTZ DEFAULT NOW(),
    total_transactions_last_hour INTEGER DEFAULT 0,
    successful_transactions_last_hour INTEGER DEFAULT 0,
    failed_transactions_last_hour INTEGER DEFAULT 0,
    success_rate_percent DECIMAL(5, 2),
    avg_processing_time_ms INTEGER,
    p95_processing_time_ms INTEGER,
    max_processing_time_ms INTEGER,
    total_nfc_scans_last_hour INTEGER DEFAULT 0,
    duplicate_nfc_scans_last_hour INTEGER DEFAULT 0,
    nfc_success_rate_percent DECIMAL(5, 2),
    active_cards_count INTEGER,
    total_system_balance DECIMAL(12, 2),
    monitoring_events_last_hour INTEGER DEFAULT 0,
    critical_events_last_hour INTEGER DEFAULT 0,
    overall_health_status TEXT DEFAULT 'UNKNOWN' CHECK (overall_health_status IN
        ('HEALTHY', 'WARNING', 'CRITICAL', 'UNKNOWN')),
    metrics_data JSONB DEFAULT '{}'
);
CREATE TABLE alert_history (
    alert_id BIGSERIAL PRIMARY KEY,
    monitoring_event_id BIGINT REFERENCES monitoring_events(event_id) ON DELETE CASCADE,
    alert_level TEXT NOT NULL CHECK (alert_level IN ('INFO', 'WARNING', 'CRITICAL', 'EMERGENCY')),
    alert_message TEXT NOT NULL,
    alert_timestamp TIMESTAMPTZ DEFAULT NOW(),
    escalation_level INTEGER DEFAULT 0,
    escalated_at TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    resolved_at TIMESTAMPTZ,
    resolution_time_seconds INTEGER,
    alert_data JSONB DEFAULT '{}'
);
CREATE INDEX idx_monitoring_events_timestamp ON monitoring_events(detection_timestamp);
CREATE INDEX idx_monitoring_events_status ON monitoring_events(status);
CREATE INDEX idx_system_health_timestamp ON system_health_snapshots(snapshot_timestamp);
CREATE INDEX idx_alert_history_monitoring_event ON alert_history(monitoring_event_id);

CREATE MATERIALIZED VIEW monitoring_dashboard_summary AS
SELECT date_trunc('hour', detection_timestamp) AS hour, event_type, severity,
       COUNT(*) AS event_count,
       COUNT(*) FILTER (WHERE status = 'OPEN') AS open_events,
       COUNT(*) FILTER (WHERE status = 'RESOLVED') AS resolved_events,
       AVG(affected_amount) AS avg_amount, SUM(affected_amount) AS total_amount,
       AVG(confidence_score) AS avg_confidence
  FROM monitoring_events WHERE detection_timestamp > NOW() - INTERVAL '48 hours'
 GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX idx_monitoring_dashboard_summary_unique
    ON monitoring_dashboard_summary (hour, event_type, severity);
CREATE MATERIALIZED VIEW system_health_trend AS
SELECT date_trunc('hour', snapshot_timestamp) AS hour,
       AVG(success_rate_percent) AS avg_success_rate,
       AVG(nfc_success_rate_percent) AS avg_nfc_success_rate,
       AVG(total_transactions_last_hour) AS avg_transactions_per_hour,
       AVG(critical_events_last_hour) AS avg_critical_events,
       COUNT(*) FILTER (WHERE overall_health_status = 'HEALTHY') AS healthy_snapshots,
       COUNT(*) FILTER (WHERE overall_health_status = 'WARNING') AS warning_snapshots,
       COUNT(*) FILTER (WHERE overall_health_status = 'CRITICAL') AS critical_snapshots,
       COUNT(*) AS total_snapshots
  FROM system_health_snapshots WHERE snapshot_timestamp > NOW() - INTERVAL '7 days'
 GROUP BY 1;
CREATE UNIQUE INDEX idx_system_health_trend_unique ON system_health_trend (hour);

CREATE FUNCTION update_monitoring_events_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at = NOW(); RETURN NEW; END; $$;
CREATE TRIGGER trigger_monitoring_events_updated_at BEFORE UPDATE ON monitoring_events
    FOR EACH ROW EXECUTE FUNCTION update_monitoring_events_updated_at();
CREATE FUNCTION create_alert_for_critical_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.severity = 'CRITICAL' THEN
        INSERT INTO alert_history (monitoring_event_id, alert_level, alert_message, alert_data)
        VALUES (NEW.event_id, 'CRITICAL', 'Critical ' || NEW.event_type || ' detected for card '
                || COALESCE(NEW.card_id, 'SYSTEM'), '{"auto_generated": true}');
    END IF;
    RETURN NEW;
END; $$;
CREATE TRIGGER trigger_create_alert_for_critical_event AFTER INSERT ON monitoring_events
    FOR EACH ROW EXECUTE FUNCTION create_alert_for_critical_event();

CREATE FUNCTION create_monitoring_event(
    p_event_type TEXT, p_severity TEXT, p_detection_algorithm TEXT, p_card_id TEXT DEFAULT NULL,
    p_transaction_id UUID DEFAULT NULL, p_affected_amount DECIMAL DEFAULT NULL,
    p_confidence_score DECIMAL DEFAULT 1.0, p_event_data JSONB DEFAULT '{}',
    p_context_data JSONB DEFAULT '{}') RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE v_id BIGINT;
BEGIN
    INSERT INTO monitoring_events (event_type, severity, detection_algorithm, card_id,
        transaction_id, affected_amount, confidence_score, event_data, context_data)
    VALUES (p_event_type, p_severity, p_detection_algorithm, p_card_id, p_transaction_id,
        p_affected_amount, p_confidence_score, p_event_data, p_context_data)
    RETURNING event_id INTO v_id;
    RETURN v_id;
END; $$;
CREATE FUNCTION detect_transaction_failures() RETURNS JSONB LANGUAGE plpgsql AS $$
BEGIN RETURN '{}'; END; $$;
CREATE FUNCTION cleanup_monitoring_data(p_retention_days INTEGER DEFAULT 30) RETURNS JSONB
LANGUAGE plpgsql AS $$ BEGIN RETURN '{}'; END; $$;
CREATE FUNCTION refresh_monitoring_views() RETURNS JSONB LANGUAGE plpgsql AS $$
BEGIN RETURN '{}'; END; $$;

-- What a season of the original leaves behind.
INSERT INTO monitoring_events (event_type, severity, detection_algorithm, event_data)
VALUES ('system_health', 'INFO', 'system_initialization', '{"migration_completed": true}');
INSERT INTO monitoring_events (event_type, severity, detection_algorithm, card_id, affected_amount,
                               event_data, detection_timestamp)
VALUES ('balance_discrepancy', 'CRITICAL', 'balance_mismatch_detection', 'DUP', 10.00, '{}',
        NOW() - INTERVAL '2 hours'),
       ('balance_discrepancy', 'CRITICAL', 'balance_mismatch_detection', 'DUP', 10.00, '{}',
        NOW() - INTERVAL '1 hour'),
       ('race_condition', 'MEDIUM', 'concurrent_transaction_detection', 'R1', NULL, '{}', NOW());
INSERT INTO monitoring_events (event_type, severity, detection_algorithm, card_id, transaction_id,
                               event_data, status, resolved_at, resolution_notes)
VALUES ('transaction_failure', 'CRITICAL', 'balance_deduction_on_failure', 'C7',
        gen_random_uuid(), '{}', 'RESOLVED', NOW(), 'refunded'),
       ('system_health', 'INFO', 'deployment_test', NULL, NULL, '{"test": true}', NULL, NULL, NULL);
INSERT INTO system_health_snapshots (overall_health_status) VALUES ('HEALTHY');
"""


async def test_a_database_with_the_original_phase4_tables_upgrades_without_losing_events(
    empty: asyncpg.Connection,
) -> None:
    await empty.execute(ORIGINAL_PHASE4)
    before = await empty.fetch(
        "SELECT event_id, event_type, card_id, status FROM monitoring_events"
    )
    alerts_before = await empty.fetchval("SELECT count(*) FROM alert_history")
    legacy_status = await empty.fetchval(
        "SELECT status FROM monitoring_events WHERE detection_algorithm = 'deployment_test'"
    )
    assert legacy_status is None

    await migrate(empty, with_payment_schema=True)

    after = await empty.fetch("SELECT * FROM monitoring_events ORDER BY event_id")
    assert {r["event_id"] for r in after} == {r["event_id"] for r in before}
    assert await empty.fetchval("SELECT count(*) FROM alert_history") == alerts_before == 3
    assert await empty.fetchval("SELECT count(*) FROM system_health_snapshots") == 1
    by_card = {(r["card_id"], r["event_id"]): r for r in after}
    older, newer = sorted(k for k in by_card if k[0] == "DUP")
    assert by_card[newer]["fingerprint"] == "card:DUP"
    assert by_card[older]["fingerprint"] == f"card:DUP#event:{older[1]}"
    assert all(r["status"] in {"OPEN", "RESOLVED"} for r in after)
    assert all(r["occurrence_count"] == 1 for r in after)

    # festmon's rules continue the legacy events instead of duplicating them.
    await empty.execute("INSERT INTO table_cards (id, amount) VALUES ('DUP', 10.00)")
    await empty.execute(
        "INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,"
        " previous_balance, new_balance) VALUES ('DUP', 'stripe_recharge', 'completed', 20, 0, 20)"
    )
    cycle = json.loads(await empty.fetchval("SELECT run_monitoring_detection_cycle()"))
    assert cycle["success"] is True, cycle["errors"]
    mismatch = await empty.fetch(
        "SELECT event_id, occurrence_count FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_mismatch_detection' ORDER BY event_id"
    )
    assert [(r["event_id"], r["occurrence_count"]) for r in mismatch] == [
        (older[1], 1),
        (newer[1], 2),
    ]
    # The original alert trigger was replaced, not doubled.
    await empty.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'm', 'Z')"
    )
    assert await empty.fetchval("SELECT count(*) FROM alert_history") == alerts_before + 1
    assert (
        await empty.fetchval(
            "SELECT count(*) FROM pg_attribute"
            " WHERE attrelid = 'monitoring_dashboard_summary'::regclass"
            " AND attname = 'total_occurrences'"
        )
        == 1
    )
