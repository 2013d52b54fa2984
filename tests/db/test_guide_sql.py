"""The deployment guide's SQL, run verbatim against festmon's schema."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# Verbatim from PHASE4_DEPLOYMENT_GUIDE.md §1.2, §1.3, §3.3, §4.3, §5.1, §5.2, §5.3 and §7.1
# (only trailing spaces dropped): a DBA pastes these into psql after `festmon db migrate`.

GUIDE_1_2 = """
-- Connect to database and verify tables
\\dt monitoring_*
\\dt system_health_*
\\dt alert_*

-- Verify functions
\\df detect_*
\\df *monitoring*

-- Check initial data
SELECT COUNT(*) FROM monitoring_events;
SELECT COUNT(*) FROM system_health_snapshots;
"""

GUIDE_1_3 = """
-- Test detection functions
SELECT detect_transaction_failures();
SELECT detect_balance_discrepancies();
SELECT detect_duplicate_nfc_scans();
SELECT detect_race_conditions();

-- Test system health update
SELECT update_system_health_snapshot();

-- Test complete detection cycle
SELECT run_monitoring_detection_cycle();
"""

GUIDE_3_3 = """
SELECT create_monitoring_event(
    'system_health',
    'INFO',
    'deployment_test',
    NULL,
    NULL,
    NULL,
    1.0,
    '{"test": true}',
    '{"deployment_verification": true}'
);
"""

GUIDE_4_3 = """
-- Refresh materialized views
SELECT refresh_monitoring_views();

-- Verify view data
SELECT * FROM monitoring_dashboard_summary LIMIT 5;
SELECT * FROM system_health_trend LIMIT 5;
"""

GUIDE_5_1 = """
-- Create test transaction failure scenario
INSERT INTO app_transaction_log (
    transaction_id,
    card_id,
    transaction_type,
    status,
    amount_involved,
    previous_balance,
    new_balance,
    timestamp,
    details
) VALUES (
    gen_random_uuid(),
    'TEST_CARD_001',
    'bar_order',
    'failed',
    10.00,
    50.00,
    40.00,  -- Balance changed despite failure
    NOW(),
    '{"test": "deployment_verification"}'
);

-- Run detection cycle
SELECT detect_transaction_failures();

-- Verify event created
SELECT * FROM monitoring_events
WHERE event_type = 'transaction_failure'
AND card_id = 'TEST_CARD_001';
"""

GUIDE_5_2 = """
-- Create test balance discrepancy
UPDATE table_cards
SET amount = -5.00
WHERE id = 'TEST_CARD_001';

-- Run detection
SELECT detect_balance_discrepancies();

-- Verify detection
SELECT * FROM monitoring_events
WHERE event_type = 'balance_discrepancy'
AND card_id = 'TEST_CARD_001';

-- Cleanup test data
UPDATE table_cards
SET amount = 0.00
WHERE id = 'TEST_CARD_001';
"""

GUIDE_5_3 = """
-- Create duplicate NFC scans
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp) VALUES
('TEST_CARD_001', NOW()),
('TEST_CARD_001', NOW() + INTERVAL '1 second'),
('TEST_CARD_001', NOW() + INTERVAL '2 seconds');

-- Run detection
SELECT detect_duplicate_nfc_scans();

-- Verify detection
SELECT * FROM monitoring_events
WHERE event_type = 'duplicate_nfc'
AND card_id = 'TEST_CARD_001';
"""

GUIDE_7_1 = """
-- Check monitoring roles
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb
FROM pg_roles
WHERE rolname LIKE 'monitoring_%';

-- Verify table permissions
SELECT grantee, table_name, privilege_type
FROM information_schema.role_table_grants
WHERE table_name LIKE 'monitoring_%';
"""


async def _run(conn: asyncpg.Connection, block: str) -> list[list[asyncpg.Record]]:
    """Each statement of a guide block in order, as psql runs them; psql's backslash commands
    (\\dt, \\df) are left to test_the_objects_psql_lists_in_section_1_2_exist."""
    sql = "\n".join(line for line in block.splitlines() if not line.startswith("\\"))
    statements = [s for s in sql.split(";\n") if _has_code(s)]
    return [await conn.fetch(statement) for statement in statements]


def _has_code(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )


def _json(value: str) -> Any:
    return json.loads(value)


async def test_section_1_2_finds_one_initialization_event_and_one_snapshot(
    conn: asyncpg.Connection,
) -> None:
    events, snapshots = await _run(conn, GUIDE_1_2)

    assert events[0]["count"] == 1
    assert snapshots[0]["count"] == 1
    event = await conn.fetchrow("SELECT * FROM monitoring_events")
    assert (event["event_type"], event["severity"], event["detection_algorithm"]) == (
        "system_health",
        "INFO",
        "system_initialization",
    )


async def test_the_objects_psql_lists_in_section_1_2_exist(conn: asyncpg.Connection) -> None:
    # What \dt monitoring_*, \dt system_health_*, \dt alert_*, \df detect_* and
    # \df *monitoring* show, through the catalog.
    tables = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')"
            " AND pg_table_is_visible(oid)"
            " AND (relname LIKE 'monitoring\\_%' OR relname LIKE 'system\\_health\\_%'"
            "      OR relname LIKE 'alert\\_%')"
        )
    }
    functions = {
        r["proname"]
        for r in await conn.fetch(
            "SELECT proname FROM pg_proc WHERE pg_function_is_visible(oid)"
            " AND (proname LIKE 'detect\\_%' OR proname LIKE '%monitoring%')"
        )
    }

    assert {"monitoring_events", "system_health_snapshots", "alert_history"} <= tables
    assert {
        "detect_transaction_failures",
        "detect_balance_discrepancies",
        "detect_duplicate_nfc_scans",
        "detect_race_conditions",
        "create_monitoring_event",
        "run_monitoring_detection_cycle",
        "refresh_monitoring_views",
        "cleanup_monitoring_data",
    } <= functions


async def test_section_1_3_runs_every_detection_function(conn: asyncpg.Connection) -> None:
    results = await _run(conn, GUIDE_1_3)

    failures, balances, nfc, races, snapshot, cycle = (r[0][0] for r in results)
    for detector in (failures, balances, nfc, races):
        assert _json(detector)["success"] is True
    assert isinstance(snapshot, int)
    assert _json(cycle)["success"] is True
    assert _json(cycle)["health_snapshot_id"] > snapshot


async def test_section_3_3_creates_the_deployment_test_event(conn: asyncpg.Connection) -> None:
    [[row]] = await _run(conn, GUIDE_3_3)

    event = await conn.fetchrow("SELECT * FROM monitoring_events WHERE event_id = $1", row[0])
    assert (event["event_type"], event["severity"], event["detection_algorithm"]) == (
        "system_health",
        "INFO",
        "deployment_test",
    )
    assert _json(event["event_data"]) == {"test": True}
    assert _json(event["context_data"]) == {"deployment_verification": True}


async def test_section_4_3_refreshes_and_reads_both_views(conn: asyncpg.Connection) -> None:
    refresh, summary, trend = await _run(conn, GUIDE_4_3)

    assert _json(refresh[0][0])["success"] is True
    assert [(r["event_type"], r["severity"], r["event_count"]) for r in summary] == [
        ("system_health", "INFO", 1)
    ]
    assert trend[0]["total_snapshots"] == 1


async def test_sections_5_1_to_5_3_detect_what_the_guide_injects(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('TEST_CARD_001', 50.00)")

    _, failures, failure_events = await _run(conn, GUIDE_5_1)
    _, balances, balance_events, _ = await _run(conn, GUIDE_5_2)
    _, nfc, nfc_events = await _run(conn, GUIDE_5_3)

    assert _json(failures[0][0])["balance_deduction_failures"] == 1
    [deduction] = failure_events
    assert (deduction["detection_algorithm"], deduction["severity"]) == (
        "balance_deduction_on_failure",
        "CRITICAL",
    )
    assert _json(balances[0][0])["negative_balances"] == 1
    [negative] = balance_events
    assert (negative["detection_algorithm"], negative["severity"]) == (
        "negative_balance_detection",
        "HIGH",
    )
    assert await conn.fetchval("SELECT amount FROM table_cards WHERE id = 'TEST_CARD_001'") == 0
    assert _json(nfc[0][0])["temporal_duplicates"] == 1
    [duplicate] = nfc_events
    assert duplicate["detection_algorithm"] == "temporal_duplicate_detection"
    assert _json(duplicate["event_data"])["pair_count"] == 2


async def test_section_7_1_shows_the_two_roles_and_their_grants(conn: asyncpg.Connection) -> None:
    roles, grants = await _run(conn, GUIDE_7_1)

    assert sorted(
        (r["rolname"], r["rolsuper"], r["rolcreaterole"], r["rolcreatedb"]) for r in roles
    ) == [
        ("monitoring_reader", False, False, False),
        ("monitoring_writer", False, False, False),
    ]
    granted = {(g["grantee"], g["table_name"], g["privilege_type"]) for g in grants}
    assert ("monitoring_reader", "monitoring_events", "SELECT") in granted
    assert ("monitoring_writer", "monitoring_events", "INSERT") in granted
    assert ("monitoring_writer", "monitoring_events", "UPDATE") in granted
    assert not {g for g in granted if g[0] == "monitoring_reader" and g[2] != "SELECT"}
