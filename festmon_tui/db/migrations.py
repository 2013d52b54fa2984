"""Flyway-style migration runner: V files once, in order; R files again when their text changes."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from festmon_tui.db.locks import MIGRATE_LOCK_KEY
from festmon_tui.resources import migrations_dir

MONITORING = "monitoring"
PAYMENTS = "payments"

_VERSIONED = re.compile(r"^V(\d+)__([A-Za-z0-9_]+)\.sql$")
_REPEATABLE = re.compile(r"^R__([A-Za-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS festmon_schema_migrations (
    migration_set  text        NOT NULL,
    filename       text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('versioned', 'repeatable')),
    checksum       text        NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    execution_ms   integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (migration_set, filename)
);
COMMENT ON TABLE festmon_schema_migrations IS
    'Ledger of festmon migrations (festmon db status); V files run once, R files when changed';
"""

# Required payment tables and columns festmon reads (SPEC §5.1).
REQUIRED_PAYMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "table_cards": ("id", "amount", "created_at", "updated_at"),
    "app_transaction_log": (
        "log_id",
        "transaction_id",
        "card_id",
        "transaction_type",
        "status",
        "amount_involved",
        "previous_balance",
        "new_balance",
        "details",
        "client_request_id",
        "timestamp",
    ),
    "nfc_scan_log": (
        "scan_log_id",
        "card_id_scanned",
        "scan_timestamp",
        "scan_status",
        "processing_duration_ms",
    ),
}


@dataclass(frozen=True)
class RecommendedIndex:
    """An index the detection rules need on a payment table (festmon never creates it there).

    Satisfied by any valid index of the table whose key columns start with `columns` and whose
    predicate is `where` (none for a full index). The reference payment schema creates them all
    (migrations/payments/V0001 and V0002); docs/DBA.md lists the same statements.
    """

    table: str
    columns: tuple[str, ...]
    name: str
    used_by: str
    where: str | None = None

    @property
    def statement(self) -> str:
        columns = ", ".join(_quoted(c) for c in self.columns)
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name}"
            f" ON {self.table} ({columns}){where};"
        )

    @property
    def display(self) -> str:
        where = f" WHERE {self.where}" if self.where else ""
        return f"{self.table} ({', '.join(self.columns)}){where}"


def _quoted(column: str) -> str:
    return f'"{column}"' if column in {"timestamp"} else column


RECOMMENDED_PAYMENT_INDEXES: tuple[RecommendedIndex, ...] = (
    RecommendedIndex(
        "app_transaction_log",
        ("timestamp",),
        "idx_app_transaction_log_timestamp",
        "system_failure_spike windows, health snapshot",
    ),
    RecommendedIndex(
        "app_transaction_log",
        ("card_id", "timestamp", "log_id"),
        "idx_app_transaction_log_card_timestamp_log",
        "concurrent_transaction_detection, consecutive_failures, event detail",
    ),
    RecommendedIndex(
        "app_transaction_log",
        ("card_id", "log_id"),
        "idx_app_transaction_log_card_log",
        "balance_chain_break, balance_mismatch_detection",
    ),
    RecommendedIndex(
        "app_transaction_log",
        ("timestamp",),
        "idx_app_transaction_log_failed_timestamp",
        "system_failure_spike",
        where="status = 'failed'",
    ),
    RecommendedIndex(
        "nfc_scan_log",
        ("scan_timestamp",),
        "idx_nfc_scan_log_scan_timestamp",
        "health snapshot",
    ),
    RecommendedIndex(
        "nfc_scan_log",
        ("card_id_scanned", "scan_timestamp", "scan_log_id"),
        "idx_nfc_scan_log_card_timestamp_scan",
        "temporal_duplicate_detection, event detail",
    ),
)

# Valid indexes of the payment tables: key column names in order, and the predicate if partial.
PAYMENT_INDEXES_SQL = """
SELECT c.relname::text AS table_name,
       ARRAY(SELECT coalesce(a.attname::text, '')
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, ord)
               LEFT JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= i.indnkeyatts
              ORDER BY k.ord) AS columns,
       pg_get_expr(i.indpred, i.indrelid) AS predicate
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema()
  AND c.relname = ANY($1::text[])
  AND i.indisvalid
  AND i.indexprs IS NULL
"""


def _normalized_predicate(text: str | None) -> str | None:
    """'(status = \'failed\'::text)' and "status = 'failed'" compare equal."""
    if text is None:
        return None
    return "".join(text.replace("::text", "").replace("(", "").replace(")", "").split()).lower()


def missing_indexes(
    existing: list[tuple[str, list[str], str | None]],
    recommended: tuple[RecommendedIndex, ...] = RECOMMENDED_PAYMENT_INDEXES,
) -> list[RecommendedIndex]:
    """The recommended indexes no existing (table, key columns, predicate) index provides."""
    missing: list[RecommendedIndex] = []
    for rec in recommended:
        wanted = _normalized_predicate(rec.where)
        if not any(
            table == rec.table
            and tuple(columns[: len(rec.columns)]) == rec.columns
            and _normalized_predicate(predicate) == wanted
            for table, columns, predicate in existing
        ):
            missing.append(rec)
    return missing


class MigrationError(Exception):
    """A migration could not be applied; nothing of the run was kept."""


@dataclass(frozen=True)
class MigrationFile:
    """One SQL file of a migration set."""

    migration_set: str
    path: Path
    kind: str
    sort_key: tuple[int, str]

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def display(self) -> str:
        return f"migrations/{self.migration_set}/{self.filename}"


@dataclass
class MigrationStatus:
    """What is applied and pending, and whether the payment tables festmon reads exist."""

    applied: list[tuple[str, str]] = field(default_factory=list)
    pending: list[MigrationFile] = field(default_factory=list)
    modified: list[MigrationFile] = field(default_factory=list)
    payment_schema_applied: bool = False
    missing_payment_tables: list[str] = field(default_factory=list)
    missing_payment_columns: dict[str, list[str]] = field(default_factory=dict)
    # Advice, not an error: the rules work without them, but slower as history grows.
    missing_recommended_indexes: list[RecommendedIndex] = field(default_factory=list)

    @property
    def payment_tables_ok(self) -> bool:
        return not self.missing_payment_tables and not self.missing_payment_columns


def discover(migration_set: str, root: Path | None = None) -> list[MigrationFile]:
    """The files of one set in the order they apply: versioned by number, then repeatables."""
    folder = (root or migrations_dir()) / migration_set
    files: list[MigrationFile] = []
    for path in sorted(folder.glob("*.sql")):
        if match := _VERSIONED.match(path.name):
            files.append(MigrationFile(migration_set, path, "versioned", (int(match[1]), "")))
        elif match := _REPEATABLE.match(path.name):
            files.append(MigrationFile(migration_set, path, "repeatable", (1 << 62, match[1])))
        else:
            raise MigrationError(
                f"{folder / path.name}: not a migration name (V0001__name.sql or R__name.sql)"
            )
    return sorted(files, key=lambda f: f.sort_key)


def _sets(with_payment_schema: bool, already_has_payments: bool) -> list[str]:
    # The reference payment schema is applied first, and only when asked (or already there).
    return [PAYMENTS, MONITORING] if with_payment_schema or already_has_payments else [MONITORING]


async def _ledger(conn: asyncpg.Connection) -> dict[tuple[str, str], str]:
    exists = await conn.fetchval("SELECT to_regclass('festmon_schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch(
        "SELECT migration_set, filename, checksum FROM festmon_schema_migrations"
    )
    return {(r["migration_set"], r["filename"]): r["checksum"] for r in rows}


def _pending(
    files: list[MigrationFile], ledger: dict[tuple[str, str], str]
) -> tuple[list[MigrationFile], list[MigrationFile]]:
    pending: list[MigrationFile] = []
    modified: list[MigrationFile] = []
    for f in files:
        recorded = ledger.get((f.migration_set, f.filename))
        if recorded is None:
            pending.append(f)
        elif recorded != f.checksum:
            (pending if f.kind == "repeatable" else modified).append(f)
    return pending, modified


def _line_of(sql: str, position: str | None) -> int | None:
    if not position or not position.isdigit():
        return None
    return sql.count("\n", 0, int(position) - 1) + 1


# "Use DROP FUNCTION name(args) first." (PostgreSQL's hint when CREATE OR REPLACE meets an
# existing routine it cannot replace: another return type, parameter names or defaults).
_DROP_HINT = re.compile(r"^Use (DROP (?:FUNCTION|PROCEDURE|AGGREGATE)) (.+) first\.?$")
_RETRY = "then run festmon db migrate again (nothing of this run was applied)"


# The table a failing DDL statement works on: CREATE/ALTER TABLE x, CREATE INDEX ... ON x.
_STATEMENT_TABLE = re.compile(
    r"(?:\bTABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?|\bON(?:\s+ONLY)?)\s+([A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE,
)
# Errors that mean "an object of that name exists with another shape" (not a festmon bug).
_SHAPE_STATES = {"42703", "42809", "42804", "42P16", "42P07", "42710"}


def _statement_at(sql: str, position: str | None) -> str | None:
    if not position or not position.isdigit():
        return None
    at = int(position) - 1
    start = sql.rfind(";", 0, at) + 1
    end = sql.find(";", at)
    return sql[start : end if end >= 0 else len(sql)]


def _conflict(exc: asyncpg.PostgresError, sql: str = "", source: str = "") -> str | None:
    """The object an error is about and what to do, when the database names it."""
    hint = (getattr(exc, "hint", None) or "").strip()
    if match := _DROP_HINT.match(hint):
        command, routine = match[1], match[2]
        kind = command.removeprefix("DROP ").lower()
        return (
            f"{kind} {routine} already exists with another definition (the original system's"
            f" or a local one) that festmon cannot replace in place; check that nothing else"
            f" uses it, run `{command} {routine};`, {_RETRY}"
        )
    table = getattr(exc, "table_name", None)
    if not table and getattr(exc, "sqlstate", None) in _SHAPE_STATES:
        statement = _statement_at(sql, getattr(exc, "position", None))
        if statement and (found := _STATEMENT_TABLE.search(statement)):
            table = found[1]
    if table:
        schema = getattr(exc, "schema_name", None)
        name = f"{schema}.{table}" if schema else table
        column = getattr(exc, "column_name", None)
        what = f"table {name}" + (f" column {column}" if column else "")
        return (
            f"{what} exists with a shape festmon does not expect; compare it with"
            f" {source or 'the migration'}, rename or fix it, {_RETRY}"
        )
    return None


def _describe_failure(f: MigrationFile, exc: asyncpg.PostgresError) -> str:
    line = _line_of(f.sql, getattr(exc, "position", None))
    where = f"{f.display}" + (f" line {line}" if line else "")
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    context = getattr(exc, "context", None)
    if not line and context:
        where += f" ({context.splitlines()[-1]})"
    conflict = _conflict(exc, f.sql, f.display)
    return f"{where}: {detail}" + (f" — {conflict}" if conflict else "")


# Upgrade in place (V0014): the original's event rows as they are before V0001 changes them.
# Only for a database whose monitoring_events is the original's (no festmon column yet).
_ORIGINAL_EVENTS_SQL = """
DO $capture$
BEGIN
    IF to_regclass('monitoring_events') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = to_regclass('monitoring_events')
                          AND attname = 'last_seen_at' AND NOT attisdropped) THEN
        CREATE TEMP TABLE festmon_original_events ON COMMIT DROP AS
        SELECT e.event_id, to_jsonb(e) AS original FROM monitoring_events AS e;
    END IF;
END
$capture$;
"""


async def migrate(
    conn: asyncpg.Connection, *, with_payment_schema: bool = False, root: Path | None = None
) -> list[MigrationFile]:
    """Apply every pending migration in one transaction; return the files applied.

    Safe to run concurrently: a transaction-scoped advisory lock serialises runners and the
    second one finds nothing pending. On any error nothing of the run is kept.
    """
    applied: list[MigrationFile] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK_KEY)
        await conn.execute(LEDGER_DDL)
        ledger = await _ledger(conn)
        has_payments = any(s == PAYMENTS for s, _ in ledger)
        for migration_set in _sets(with_payment_schema, has_payments):
            files = discover(migration_set, root)
            pending, modified = _pending(files, ledger)
            if modified:
                names = ", ".join(f.display for f in modified)
                raise MigrationError(
                    f"{names} changed after it was applied; versioned migrations are immutable "
                    "(add a new V file instead)"
                )
            if migration_set == MONITORING and any(
                f.kind == "versioned" and f.sort_key[0] == 1 for f in pending
            ):
                await conn.execute(_ORIGINAL_EVENTS_SQL)
            for f in pending:
                started = time.perf_counter()
                try:
                    async with conn.transaction():  # a savepoint, so the error names this file
                        await conn.execute(f.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(_describe_failure(f, exc)) from None
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                await conn.execute(
                    """
                    INSERT INTO festmon_schema_migrations
                        (migration_set, filename, kind, checksum, execution_ms)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (migration_set, filename) DO UPDATE
                        SET checksum = EXCLUDED.checksum, applied_at = now(),
                            execution_ms = EXCLUDED.execution_ms
                    """,
                    f.migration_set,
                    f.filename,
                    f.kind,
                    f.checksum,
                    elapsed_ms,
                )
                applied.append(f)
        hook = await conn.fetchval("SELECT to_regproc('festmon_after_migrate') IS NOT NULL")
        if hook:
            try:
                await conn.execute("SELECT festmon_after_migrate()")
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"festmon_after_migrate(): {exc}") from None
    return applied


async def status(conn: asyncpg.Connection, *, root: Path | None = None) -> MigrationStatus:
    """Applied and pending migrations, what the payment tables lack, indexes worth adding."""
    ledger = await _ledger(conn)
    result = MigrationStatus(applied=sorted(ledger))
    result.payment_schema_applied = any(s == PAYMENTS for s, _ in ledger)
    for migration_set in _sets(False, result.payment_schema_applied):
        pending, modified = _pending(discover(migration_set, root), ledger)
        result.pending.extend(pending)
        result.modified.extend(modified)
    rows = await conn.fetch(
        """
        SELECT table_name::text AS table_name, column_name::text AS column_name
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
        """,
        list(REQUIRED_PAYMENT_COLUMNS),
    )
    present: dict[str, set[str]] = {}
    for r in rows:
        present.setdefault(r["table_name"], set()).add(r["column_name"])
    for table, columns in REQUIRED_PAYMENT_COLUMNS.items():
        if table not in present:
            result.missing_payment_tables.append(table)
            continue
        missing = [c for c in columns if c not in present[table]]
        if missing:
            result.missing_payment_columns[table] = missing
    # Recommended indexes, on the payment tables that exist (a missing table is reported above).
    tables = sorted({r.table for r in RECOMMENDED_PAYMENT_INDEXES} & set(present))
    indexes = await conn.fetch(PAYMENT_INDEXES_SQL, tables)
    existing = [(r["table_name"], list(r["columns"]), r["predicate"]) for r in indexes]
    result.missing_recommended_indexes = [
        r for r in missing_indexes(existing) if r.table in present
    ]
    return result
