"""The migration runner: order, idempotence, repeatables, concurrency, clear failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.migrations import MigrationError, migrate, status


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


def test_badly_named_migration_files_are_refused(tmp_path: Path) -> None:
    from festmon_tui.db.migrations import discover

    _write(tmp_path, "monitoring", "0001_no_prefix.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="not a migration name"):
        discover("monitoring", tmp_path)
