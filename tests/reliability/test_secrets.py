"""The DSN password never appears: not in output, logs, error messages, documents or exports."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.reliability.cli import environment, run
from tests.reliability.server import Database

# Characters a password may hold that a careless redaction would split on or leave encoded.
PASSWORD = "Zq9:@/?#%&=+ é-SecretMarker"
WRONG = "Wrong-SecretMarker-42"
LOGIN = "rel_secret_login"


def forms(secret: str) -> list[str]:
    """The ways a password could leak: as typed, URL-encoded, and its distinctive tail."""
    return [secret, quote(secret, safe=""), quote(secret), "SecretMarker"]


def assert_absent(text: str, where: str) -> None:
    for form in forms(PASSWORD) + forms(WRONG):
        assert form not in text, f"the password leaked into {where}"


@pytest.fixture
async def login(rel_db: Database) -> str:
    admin = await rel_db.admin()
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {LOGIN}")
        statement = await admin.fetchval(
            "SELECT format('CREATE ROLE %I LOGIN SUPERUSER PASSWORD %L', $1::text, $2::text)",
            LOGIN,
            PASSWORD,
        )
        await admin.execute(statement)
        await admin.execute(
            "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'test_rule',"
            " 'card-1', NULL, 12.50, 1.0, '{}', '{}')"
        )
    finally:
        await admin.close()
    return LOGIN


async def test_no_command_prints_or_logs_the_password(
    rel_db: Database, login: str, tmp_path: Path
) -> None:
    dsn = rel_db.tcp_dsn(user=login, password=PASSWORD)
    secret = quote(PASSWORD, safe="")
    query_dsn = (
        f"postgresql://{login}@127.0.0.1:{rel_db.server.port}/{rel_db.name}?password={secret}"
    )
    wrong = rel_db.tcp_dsn(user=login, password=WRONG)
    runs: list[tuple[str, ...]] = [  # the password as a query parameter instead
        ("-v", "health", "--json", "--database-url", query_dsn),
        ("-v", "cycle", "--database-url", query_dsn),
        ("-v", "events", "--format", "csv", "--database-url", query_dsn),
    ]
    for url in (dsn,):
        runs += [
            ("-v", "health", "--json", "--database-url", url),
            ("-v", "status", "--json", "--database-url", url),
            ("-v", "status", "--database-url", url),
            ("-v", "cycle", "--json", "--database-url", url),
            ("-v", "events", "--format", "json", "--database-url", url),
            ("-v", "events", "--format", "csv", "--database-url", url),
            ("-v", "events", "--database-url", url),
            ("-v", "db", "status", "--json", "--database-url", url),
            ("-v", "db", "migrate", "--database-url", url),
            ("-v", "ack", "999999", "--database-url", url),
            ("-v", "resolve", "1", "--note", "done", "--database-url", url),
        ]
    runs += [  # error paths, where a message most easily quotes its input
        ("-v", "health", "--database-url", wrong),
        ("-v", "cycle", "--database-url", wrong),
        ("-v", "db", "status", "--database-url", wrong),
        ("-v", "health", "--database-url", wrong.replace(str(rel_db.server.port), "9")),
        ("-v", "health", "--database-url", wrong.replace(str(rel_db.server.port), "notaport")),
        ("-v", "health", "--database-url", wrong.replace(str(rel_db.server.port), "99999")),
        ("-v", "health", "--database-url", wrong.replace("postgresql", "postgres-ql")),
        ("-v", "health", "--database-url", wrong + "?sslmode=bogus"),
    ]
    results = await asyncio.gather(*(run(*args, cwd=tmp_path) for args in runs))
    for args, result in zip(runs, results, strict=True):
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert_absent(result.stdout + result.stderr, " ".join(args[:3]))
    assert any("wrong user or password" in r.stderr for r in results)


async def test_the_headless_scheduler_log_never_holds_the_password(
    rel_db: Database, login: str, tmp_path: Path
) -> None:
    dsn = rel_db.tcp_dsn(user=login, password=PASSWORD)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "-v", "run", "--headless", "--database-url", dsn,
        "--monitoring-interval-critical", "200",
        cwd=tmp_path, env=environment(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while sum("job critical ok" in line for line in lines) < 2:
                line = await process.stderr.readline()
                assert line, "".join(lines)
                lines.append(line.decode())
    finally:
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.communicate(), 10)
    assert_absent("".join(lines) + rest[1].decode(), "the headless log")


async def test_nothing_festmon_stores_in_the_database_holds_the_password(
    rel_db: Database, login: str, tmp_path: Path
) -> None:
    dsn = rel_db.tcp_dsn(user=login, password=PASSWORD)
    for args in (("cycle",), ("ack", "1"), ("db", "migrate")):
        await run(*args, "--database-url", dsn, cwd=tmp_path)
    admin = await rel_db.admin()
    try:
        tables = await admin.fetch(
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'm') AND (relname LIKE 'monitoring%' OR relname LIKE 'festmon%'"
            " OR relname IN ('system_health_snapshots', 'alert_history', 'system_health_trend'))"
        )
        assert len(tables) >= 8
        for row in tables:
            dump = await admin.fetchval(
                f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {row['relname']} AS t"
            )
            assert_absent(dump, row["relname"])
        activity = await admin.fetchval(
            "SELECT string_agg(coalesce(application_name, '') || query, ' ') FROM pg_stat_activity"
        )
        assert_absent(activity or "", "pg_stat_activity")
    finally:
        await admin.close()
