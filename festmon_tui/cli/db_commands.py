"""`festmon db migrate` and `festmon db status`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from festmon_tui.db.connect import DatabaseUnavailable, connect
from festmon_tui.db.migrations import MigrationError, MigrationStatus, migrate, status
from festmon_tui.db.target import open_target
from festmon_tui.presentation import EXIT_FAILED, EXIT_OK, EXIT_USAGE, dumps_json, escape
from festmon_tui.settings import Settings


def _run(main: Coroutine[Any, Any, int], command: str) -> int:
    """asyncio.run; a database that is away or a migration that fails is one line, exit 1."""
    try:
        return asyncio.run(main)
    except (DatabaseUnavailable, MigrationError) as exc:
        sys.stderr.write(f"festmon: {command} failed: {escape(exc)}\n")
        return EXIT_FAILED


@asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """One connection to the configured database (started if embedded), and its label."""
    async with open_target(settings) as target:
        conn = await connect(target.options)
        try:
            yield conn, target.label
        finally:
            await conn.close()


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    return _run(_migrate(settings, args.with_payment_schema), "migrate")


async def _migrate(settings: Settings, with_payment_schema: bool) -> int:
    async with _connection(settings) as (conn, label):
        applied = await migrate(conn, with_payment_schema=with_payment_schema)
        after = await status(conn)
    _warn_about_payment_tables(after)
    if applied:
        for f in applied:
            print(f"applied {f.display}")
        print(f"{len(applied)} migration(s) applied to {label}")
    else:
        print(f"nothing to apply: {label} is up to date")
    return EXIT_OK


def _warn_about_payment_tables(result: MigrationStatus) -> None:
    """The schema is in place, but festmon reads payment tables this database lacks: say so."""
    if result.missing_payment_tables:
        sys.stderr.write(
            "festmon: warning: payment tables missing: "
            + ", ".join(result.missing_payment_tables)
            + " — festmon has nothing to watch here. Is this the festival's payment database?"
            " Create them (SPEC §5.1), or add --with-payment-schema for a demo or test database.\n"
        )
    for table, columns in result.missing_payment_columns.items():
        sys.stderr.write(
            f"festmon: warning: payment table {table} lacks column(s) {', '.join(columns)}"
            " — the rules that read them will fail (see festmon db status)\n"
        )


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    return _run(_status(settings, args.json), "status")


def _status_document(result: MigrationStatus, database: str) -> dict[str, Any]:
    return {
        "database": database,
        "applied": [f"{s}/{name}" for s, name in result.applied],
        "pending": [f"{f.migration_set}/{f.filename}" for f in result.pending],
        "modified_after_apply": [f"{f.migration_set}/{f.filename}" for f in result.modified],
        "payment_schema_applied": result.payment_schema_applied,
        "payment_tables": {
            "ok": result.payment_tables_ok,
            "missing_tables": result.missing_payment_tables,
            "missing_columns": result.missing_payment_columns,
        },
        # Advice only (festmon never creates indexes on a festival's payment tables).
        "payment_indexes": {
            "ok": not result.missing_recommended_indexes,
            "missing_recommended": [
                {
                    "table": i.table,
                    "columns": list(i.columns),
                    "where": i.where,
                    "name": i.name,
                    "used_by": i.used_by,
                    "statement": i.statement,
                }
                for i in result.missing_recommended_indexes
            ],
        },
    }


async def _status(settings: Settings, as_json: bool) -> int:
    async with _connection(settings) as (conn, label):
        result = await status(conn)
    doc = _status_document(result, label)
    if as_json:
        print(dumps_json(doc))
    else:
        print(f"database: {label}")
        print(f"applied migrations: {len(result.applied)}")
        for name in doc["applied"]:
            print(f"  applied  {name}")
        for name in doc["pending"]:
            print(f"  pending  {name}")
        for name in doc["modified_after_apply"]:
            print(f"  MODIFIED {name} (changed after it was applied)")
        if not result.pending and not result.modified:
            print("schema: up to date")
        if result.payment_tables_ok:
            print("payment tables: present (table_cards, app_transaction_log, nfc_scan_log)")
        else:
            for table in result.missing_payment_tables:
                print(f"payment tables: MISSING {table}")
            for table, cols in result.missing_payment_columns.items():
                print(f"payment tables: {table} lacks column(s) {', '.join(cols)}")
        if result.missing_recommended_indexes:
            print(
                f"advice: {len(result.missing_recommended_indexes)} recommended index(es) missing"
                " on the payment tables; detection slows down as the history grows without them."
            )
            print("  festmon never creates them there; a DBA can, without blocking payments:")
            for index in result.missing_recommended_indexes:
                print(f"  -- {index.display}: used by {index.used_by}")
                print(f"  {index.statement}")
            print("  (see docs/DBA.md)")
        elif not result.missing_payment_tables:
            print("payment indexes: every recommended index is present")
    healthy = not result.pending and not result.modified and result.payment_tables_ok
    return EXIT_OK if healthy else EXIT_FAILED


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    choice = settings.database()
    if choice.kind != "embedded":
        sys.stderr.write(
            f"festmon: db serve is for the embedded server; {choice.label} names a database\n"
        )
        return EXIT_USAGE
    return asyncio.run(_serve(settings, demo=bool(getattr(args, "demo", False))))


async def _serve(settings: Settings, *, demo: bool) -> int:
    from festmon_tui.db.simulation.demo import DEMO_DATABASE, with_database

    async with open_target(settings) as target:
        dsn = with_database(target.options.dsn, DEMO_DATABASE) if demo else target.options.dsn
        what = f"festmon demo's database ({DEMO_DATABASE})" if demo else "embedded PostgreSQL"
        print(f"{what} ready: {dsn}", flush=True)
        print(f"for festmon health/events/psql: export DATABASE_URL='{dsn}'", flush=True)
        print("press Ctrl+C to stop it (other festmon processes keep it alive)", flush=True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
    return EXIT_OK
