"""The migration runner: order, idempotence, repeatables, concurrency, clear failures, advice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.migrations import (
    RECOMMENDED_PAYMENT_INDEXES,
    MigrationError,
    migrate,
    missing_indexes,
    status,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write(root: Path, migration_set: str, name: str, sql: str) -> None:
    folder = root / migration_set
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write(tmp_path, "monitoring", "V0001__first.sql", "CREATE TABLE t1 (id int);")
    _write(tmp_path, "monitoring", "V0002__second.sql", "INSERT INTO t1 VALUES (1);")
    _write(
        tmp_path,
        "monitoring",
        "R__answer.sql",
        "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';",
    )
    _write(tmp_path, "payments", "V0001__pay.sql", "CREATE TABLE pay (id int);")
    return tmp_path


@pytest.fixture
async def empty(empty_db_dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(empty_db_dsn)
    yield conn
    await conn.close()


async def test_versioned_files_apply_once_in_order_then_nothing_is_pending(
    empty: asyncpg.Connection, root: Path
) -> None:
    applied = await migrate(empty, root=root)
    assert [f.filename for f in applied] == [
        "V0001__first.sql",
        "V0002__second.sql",
        "R__answer.sql",
    ]
    assert await empty.fetchval("SELECT count(*) FROM t1") == 1
    assert await migrate(empty, root=root) == []
    assert await empty.fetchval("SELECT count(*) FROM t1") == 1
    assert (await status(empty, root=root)).pending == []


async def test_payment_schema_is_applied_only_when_asked(
    empty: asyncpg.Connection, root: Path
) -> None:
    await migrate(empty, root=root)
    assert await empty.fetchval("SELECT to_regclass('pay')") is None
    applied = await migrate(empty, root=root, with_payment_schema=True)
    assert [f.filename for f in applied] == ["V0001__pay.sql"]
    assert (await status(empty, root=root)).payment_schema_applied


async def test_a_changed_repeatable_file_is_applied_again(
    empty: asyncpg.Connection, root: Path
) -> None:
    await migrate(empty, root=root)
    _write(
        root,
        "monitoring",
        "R__answer.sql",
        "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 43';",
    )
    assert [f.filename for f in (await status(empty, root=root)).pending] == ["R__answer.sql"]
    applied = await migrate(empty, root=root)
    assert [f.filename for f in applied] == ["R__answer.sql"]
    assert await empty.fetchval("SELECT answer()") == 43


async def test_a_versioned_file_changed_after_apply_is_refused(
    empty: asyncpg.Connection, root: Path
) -> None:
    await migrate(empty, root=root)
    _write(root, "monitoring", "V0002__second.sql", "INSERT INTO t1 VALUES (2);")
    with pytest.raises(MigrationError, match=r"V0002__second\.sql changed after it was applied"):
        await migrate(empty, root=root)
    assert (await status(empty, root=root)).modified[0].filename == "V0002__second.sql"


async def test_a_failing_migration_names_file_and_line_and_keeps_nothing(
    empty: asyncpg.Connection, root: Path
) -> None:
    _write(
        root,
        "monitoring",
        "V0003__broken.sql",
        "CREATE TABLE t3 (id int);\n\n-- a comment\nSELEC oops;\n",
    )
    with pytest.raises(MigrationError) as info:
        await migrate(empty, root=root)
    assert "migrations/monitoring/V0003__broken.sql line 4" in str(info.value)
    assert "syntax error" in str(info.value)
    assert await empty.fetchval("SELECT to_regclass('t1')") is None
    assert await empty.fetchval("SELECT to_regclass('festmon_schema_migrations')") is None


async def test_two_concurrent_migrate_runs_apply_each_file_exactly_once(
    empty_db_dsn: str, root: Path
) -> None:
    first, second = await asyncpg.connect(empty_db_dsn), await asyncpg.connect(empty_db_dsn)
    try:
        results = await asyncio.gather(migrate(first, root=root), migrate(second, root=root))
        assert sorted(len(r) for r in results) == [0, 3]
        assert await first.fetchval("SELECT count(*) FROM t1") == 1
    finally:
        await first.close()
        await second.close()


async def test_status_names_missing_payment_tables_and_columns(
    empty: asyncpg.Connection, root: Path
) -> None:
    await empty.execute("CREATE TABLE table_cards (id text primary key, amount numeric)")
    result = await status(empty, root=root)
    assert "app_transaction_log" in result.missing_payment_tables
    assert "nfc_scan_log" in result.missing_payment_tables
    assert result.missing_payment_columns == {"table_cards": ["created_at", "updated_at"]}
    assert [f.filename for f in result.pending][:2] == ["V0001__first.sql", "V0002__second.sql"]


async def test_the_reference_payment_schema_has_every_recommended_index(
    conn: asyncpg.Connection,
) -> None:
    result = await status(conn)
    assert result.missing_recommended_indexes == []
    assert {i.name for i in RECOMMENDED_PAYMENT_INDEXES} <= set(
        await conn.fetchval(
            "SELECT array_agg(indexname::text) FROM pg_indexes"
            " WHERE tablename IN ('app_transaction_log', 'nfc_scan_log')"
        )
    )


async def test_status_advises_the_recommended_indexes_a_festival_database_lacks(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("DROP INDEX idx_app_transaction_log_card_log")
    await conn.execute("DROP INDEX idx_app_transaction_log_failed_timestamp")
    await conn.execute("DROP INDEX idx_nfc_scan_log_card_timestamp_scan")
    # Another name and an extra trailing column still serve the rule ...
    await conn.execute("CREATE INDEX dba_cards ON app_transaction_log (card_id, log_id, status)")
    # ... a partial index on other rows does not, nor one whose columns are in another order.
    await conn.execute(
        "CREATE INDEX dba_done ON app_transaction_log (\"timestamp\") WHERE status = 'completed'"
    )
    await conn.execute(
        "CREATE INDEX dba_scans ON nfc_scan_log (scan_timestamp, card_id_scanned, scan_log_id)"
    )

    missing = (await status(conn)).missing_recommended_indexes

    assert [(i.table, i.columns, i.where) for i in missing] == [
        ("app_transaction_log", ("timestamp",), "status = 'failed'"),
        ("nfc_scan_log", ("card_id_scanned", "scan_timestamp", "scan_log_id"), None),
    ]
    assert missing[0].statement == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_app_transaction_log_failed_timestamp"
        " ON app_transaction_log (\"timestamp\") WHERE status = 'failed';"
    )
    # The advice's own statements satisfy it (CONCURRENTLY: outside a transaction block).
    for index in missing:
        await conn.execute(index.statement)
    assert (await status(conn)).missing_recommended_indexes == []


async def test_db_status_prints_the_index_advice_and_still_succeeds(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("DROP INDEX idx_app_transaction_log_card_timestamp_log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DATABASE_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)

    def festmon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "festmon_tui", "db", "status", "--database-url", db_dsn, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    text, doc = await asyncio.gather(
        asyncio.to_thread(festmon), asyncio.to_thread(festmon, "--json")
    )

    assert text.returncode == 0, text.stderr
    assert "advice: 1 recommended index(es) missing" in text.stdout
    assert (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_app_transaction_log_card_timestamp_log"
        ' ON app_transaction_log (card_id, "timestamp", log_id);' in text.stdout
    )
    assert doc.returncode == 0, doc.stderr
    indexes = json.loads(doc.stdout)["payment_indexes"]
    assert indexes["ok"] is False
    assert [i["name"] for i in indexes["missing_recommended"]] == [
        "idx_app_transaction_log_card_timestamp_log"
    ]


def test_recommended_indexes_match_by_leading_columns_and_predicate() -> None:
    existing = [
        ("app_transaction_log", ["timestamp"], None),
        ("app_transaction_log", ["timestamp"], "(status = 'failed'::text)"),
        ("app_transaction_log", ["card_id", "timestamp", "log_id", "status"], None),
        ("app_transaction_log", ["card_id"], None),
        ("nfc_scan_log", ["scan_timestamp"], "(scan_status = 'success'::text)"),
    ]
    assert [i.name for i in missing_indexes(existing)] == [
        "idx_app_transaction_log_card_log",
        "idx_nfc_scan_log_scan_timestamp",
        "idx_nfc_scan_log_card_timestamp_scan",
    ]


def test_badly_named_migration_files_are_refused(tmp_path: Path) -> None:
    from festmon_tui.db.migrations import discover

    _write(tmp_path, "monitoring", "0001_no_prefix.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="not a migration name"):
        discover("monitoring", tmp_path)
