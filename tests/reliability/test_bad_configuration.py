"""Bad settings, bad DSNs, unreachable servers, wrong passwords, missing payment tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import get_args

import pytest

from festmon_tui.cli import main
from festmon_tui.settings import (
    Settings,
    SettingsError,
    field_env_name,
    field_option_name,
    load_settings,
)
from tests.reliability.cli import assert_clean_failure, environment, festmon, run
from tests.reliability.proxy import FaultProxy
from tests.reliability.server import Database, ReliabilityServer, create_database, drop_database

SECRET = "Pw-Bad-Config-5e1d"

# Settings whose every string is valid here; the dashboard checks theme and keymap when it starts.
FREE_TEXT = {"monitoring_theme", "monitoring_operator", "monitoring_keymap", "monitoring_data_dir"}
# The HTTP API's settings are checked when the API starts (--http): tests/api/test_cli_serve.py.
API_SETTINGS = {
    "monitoring_api_read_tokens",
    "monitoring_api_operator_tokens",
    "monitoring_api_token_file",
    "monitoring_api_cors_origins",
    "monitoring_api_rate_limits",
}


def _bad_values(name: str) -> list[str]:
    """Values a setting must refuse, from its type and bounds."""
    info = Settings.model_fields[name]
    kind = info.annotation
    if name in ("database_url", "monitoring_read_url"):
        return ["garbage", "mysql://u:pw@h/db", "postgresql://[::1", "http://example.com"]
    if name == "monitoring_timezone":
        return ["Mars/Olympus_Mons", "../../etc/passwd", ""]
    if isinstance(kind, type) and issubclass(kind, Enum):
        return ["bogus", ""]
    if kind is bool:
        return ["maybe", "2"]
    values = ["abc", ""]
    if kind is int:
        values += ["1.5", "1e3"]
    if kind is Decimal:
        values += ["NaN", "Infinity"]
    for bound in info.metadata:
        if hasattr(bound, "gt"):
            values.append(str(bound.gt))
        if hasattr(bound, "ge"):
            values.append(str(bound.ge - 1))
        if hasattr(bound, "le"):
            values.append(str(bound.le + 1))
    return values


def _cases() -> Iterator[tuple[str, str]]:
    for name in Settings.model_fields:
        if name not in FREE_TEXT | API_SETTINGS:
            for value in _bad_values(name):
                yield name, value


def test_every_setting_is_either_validated_or_known_free_text() -> None:
    # A new setting must be added to one list or the other, so it cannot escape this file.
    unvalidated = {
        name
        for name, info in Settings.model_fields.items()
        if str in (info.annotation, *get_args(info.annotation))
        and name not in ("database_url", "monitoring_timezone")
    }
    paths = {name for name in Settings.model_fields if name.endswith("_dir")}
    assert (unvalidated | paths) - API_SETTINGS == FREE_TEXT


@pytest.mark.parametrize(("name", "value"), list(_cases()))
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    name: str, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(("MONITORING_", "DATABASE_")):
            monkeypatch.delenv(key)
    # As a command-line option...
    code = main(["--env-file", "/nonexistent", "status", f"{field_option_name(name)}={value}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(
        f"festmon: invalid setting {field_env_name(name)}"
    )
    # ... and as an environment variable.
    monkeypatch.setenv(field_env_name(name), value)
    code = main(["--env-file", "/nonexistent", "status"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"invalid setting {field_env_name(name)}" in err
    if name == "database_url":
        assert value not in err  # a DSN is never echoed: it may hold a password


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--monitoring-statement-timeout-ms", "3000000000"),
        ("--monitoring-circuit-timeout-ms", "3000000000"),
        ("--database-url", "postgresql://u@127.0.0.1:notaport/db"),
        ("--database-url", "postgresql://u@127.0.0.1:99999/db"),
        ("--database-url", "postgresql://u@h1:5432,h2:0/db"),
        ("--monitoring-discrepancy-threshold", "0.001"),
        ("--monitoring-discrepancy-threshold", "100000000"),
    ],
)
def test_values_postgresql_would_refuse_are_caught_as_settings(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = option.removeprefix("--").replace("-", "_")
    with pytest.raises(SettingsError):
        load_settings({name: value}, env_file=None)


# DSNs that parse as postgresql:// URLs but cannot work, and where they point.
UNUSABLE_DSNS = {
    "defaults": "postgresql://",  # PGHOST / PGPORT below point it at a closed port
    "bad-sslmode": f"postgresql://u:{SECRET}@127.0.0.1:9/db?sslmode=bogus",
    "closed-port": f"postgresql://u:{SECRET}@127.0.0.1:9/db",
    "unknown-host": f"postgresql://u:{SECRET}@no-such-host.invalid/db",
    "missing-socket": f"postgresql://u:{SECRET}@/db?host=/nonexistent",
}
COMMANDS = (("health",), ("cycle",), ("events",), ("db", "status"))


@pytest.mark.parametrize("label", list(UNUSABLE_DSNS))
async def test_an_unusable_dsn_is_one_clear_line_without_the_password(
    label: str, tmp_path: Path
) -> None:
    env = environment(PGHOST="127.0.0.1", PGPORT="9", MONITORING_CONNECT_TIMEOUT_MS="2000")
    dsn = UNUSABLE_DSNS[label]
    results = await asyncio.gather(
        *(
            asyncio.to_thread(festmon, *cmd, "--database-url", dsn, cwd=tmp_path, env=env)
            for cmd in COMMANDS
        )
    )
    for cmd, result in zip(COMMANDS, results, strict=True):
        message = assert_clean_failure(result)
        assert SECRET not in result.stdout + result.stderr, cmd
        assert message.count("\n") == 0 or cmd == ("health",), (cmd, message)
        # Nagios reads health: UNKNOWN (3) when the database cannot be asked.
        if cmd == ("health",):
            assert result.returncode == 3, result.stderr


async def test_a_server_that_accepts_but_never_answers_times_out_at_the_connect_timeout(
    rel_db: Database, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.stall()
    env = environment(MONITORING_CONNECT_TIMEOUT_MS="1000")
    dsn = rel_db.tcp_dsn(port=proxy.port)
    result = await run("health", "--database-url", dsn, cwd=tmp_path, env=env)
    message = assert_clean_failure(result, code=3)
    assert "timed out after 1 s" in message


async def test_a_wrong_password_is_refused_in_one_line_without_echoing_it(
    rel_db: Database, tmp_path: Path
) -> None:
    dsn = rel_db.tcp_dsn(password=SECRET)
    for cmd in COMMANDS:
        result = await run(*cmd, "--database-url", dsn, cwd=tmp_path)
        message = assert_clean_failure(result)
        assert "wrong user or password" in message, (cmd, message)
        assert SECRET not in result.stdout + result.stderr


async def _without_payment_tables(server: ReliabilityServer, tmp_path: Path) -> str:
    """A database with festmon's schema and no payment tables; returns its name."""
    name = await create_database(server, template=None)
    migrate = await run("db", "migrate", "--database-url", server.tcp_dsn(name), cwd=tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    return name


async def test_a_database_without_payment_tables_is_reported_not_crashed_on(
    rel_server: ReliabilityServer, tmp_path: Path
) -> None:
    name = await _without_payment_tables(rel_server, tmp_path)
    try:
        dsn = rel_server.tcp_dsn(name)
        status = await run("db", "status", "--database-url", dsn, cwd=tmp_path)
        assert status.returncode == 1 and "Traceback" not in status.stderr
        for table in ("table_cards", "app_transaction_log", "nfc_scan_log"):
            assert f"MISSING {table}" in status.stdout
        cycle = await run("cycle", "--database-url", dsn, cwd=tmp_path)
        assert cycle.returncode == 1 and "Traceback" not in cycle.stderr + cycle.stdout
        assert 'relation "table_cards" does not exist' in cycle.stdout + cycle.stderr
        for cmd in (("health",), ("events",), ("status",)):
            result = await run(*cmd, "--database-url", dsn, cwd=tmp_path)
            assert "Traceback" not in result.stdout + result.stderr, cmd
    finally:
        await drop_database(rel_server, name)


async def test_a_payment_table_missing_a_column_is_named(rel_db: Database, tmp_path: Path) -> None:
    conn = await rel_db.admin()
    try:
        await conn.execute("ALTER TABLE app_transaction_log DROP COLUMN details CASCADE")
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()
    status = await run("db", "status", "--database-url", dsn, cwd=tmp_path)
    assert status.returncode == 1
    assert "app_transaction_log lacks column(s) details" in status.stdout
    cycle = await run("cycle", "--database-url", dsn, cwd=tmp_path)
    assert cycle.returncode == 1 and "Traceback" not in cycle.stderr + cycle.stdout
    assert "details" in cycle.stdout and "FAILED" in cycle.stdout


async def test_a_database_without_festmon_says_to_migrate(
    rel_server: ReliabilityServer, tmp_path: Path
) -> None:
    name = await create_database(rel_server, template=None)
    try:
        dsn = rel_server.tcp_dsn(name)
        for cmd in (("cycle",), ("events",), ("ack", "1")):
            result = await run(*cmd, "--database-url", dsn, cwd=tmp_path)
            message = assert_clean_failure(result, code=1)
            assert "festmon db migrate" in message, (cmd, message)
    finally:
        await drop_database(rel_server, name)


def test_multi_host_and_ipv6_dsns_with_good_ports_are_accepted() -> None:
    for dsn in (
        "postgresql://u@h1:5432,h2/db",
        "postgresql://u@h1,h2:6432/db",
        "postgresql://u:p@[::1]:5432/db",
        "postgresql://u@[::1]/db",
        "postgresql:///db?host=/run/postgresql",
    ):
        assert load_settings({"database_url": dsn}, env_file=None).dsn == dsn


BAD_PORT_DSNS = {
    "port-not-a-number": f"postgresql://u:{SECRET}@127.0.0.1:notaport/db",
    "port-out-of-range": f"postgresql://u:{SECRET}@127.0.0.1:99999/db",
}


@pytest.mark.parametrize("label", list(BAD_PORT_DSNS))
async def test_a_dsn_port_postgresql_cannot_use_is_a_setting_error_without_the_password(
    label: str, tmp_path: Path
) -> None:
    dsn = BAD_PORT_DSNS[label]
    results = await asyncio.gather(
        *(
            asyncio.to_thread(festmon, *cmd, "--database-url", dsn, cwd=tmp_path, env=environment())
            for cmd in COMMANDS
        )
    )
    for cmd, result in zip(COMMANDS, results, strict=True):
        # health is a monitoring plugin: UNKNOWN (3); every other command: usage error (2).
        message = assert_clean_failure(result, code=3 if cmd == ("health",) else 2)
        assert message.startswith("festmon: invalid setting DATABASE_URL: port "), message
        assert message.count("\n") == 0, message
        assert SECRET not in result.stdout + result.stderr, cmd
