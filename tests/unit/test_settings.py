"""Settings: the original's names and units, .env, command-line overrides, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from festmon_tui.settings import PoolerMode, Settings, SettingsError, load_settings, redact_dsn


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MONITORING_") or key in ("DATABASE_URL", "ENVIRONMENT"):
            monkeypatch.delenv(key)


def test_defaults_are_the_originals() -> None:
    s = load_settings(env_file=None)
    assert (
        s.monitoring_interval_critical,
        s.monitoring_interval_medium,
        s.monitoring_interval_health,
        s.monitoring_interval_cleanup,
    ) == (30000, 120000, 300000, 3600000)
    assert (
        s.monitoring_circuit_failure_threshold,
        s.monitoring_circuit_recovery_timeout_ms,
        s.monitoring_circuit_half_open_max_calls,
        s.monitoring_circuit_timeout_ms,
    ) == (5, 60000, 2, 30000)
    assert s.monitoring_cleanup_retention_days == 30
    assert s.monitoring_batch_size == 500
    assert s.environment == "development"
    assert s.dsn is None


def test_environment_variables_use_the_original_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("MONITORING_INTERVAL_CRITICAL", "15000")
    monkeypatch.setenv("MONITORING_CIRCUIT_FAILURE_THRESHOLD", "3")
    s = load_settings(env_file=None)
    assert s.environment == "production"
    assert s.monitoring_interval_critical == 15000
    assert s.monitoring_circuit_failure_threshold == 3


def test_a_dotenv_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("MONITORING_INTERVAL_MEDIUM=60000\nMONITORING_BATCH_SIZE=100\n")
    monkeypatch.setenv("MONITORING_BATCH_SIZE", "250")
    s = load_settings(env_file=str(env))
    assert s.monitoring_interval_medium == 60000
    assert s.monitoring_batch_size == 250


def test_command_line_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_INTERVAL_HEALTH", "1000")
    s = load_settings({"monitoring_interval_health": "2000"}, env_file=None)
    assert s.monitoring_interval_health == 2000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONITORING_INTERVAL_CRITICAL", "0"),
        ("MONITORING_INTERVAL_MEDIUM", "-5"),
        ("MONITORING_CLEANUP_RETENTION_DAYS", "-1"),
        ("MONITORING_CIRCUIT_FAILURE_THRESHOLD", "many"),
        ("ENVIRONMENT", "staging"),
        ("MONITORING_TIMEZONE", "Mars/Olympus"),
        ("MONITORING_POOLER_MODE", "sometimes"),
        ("DATABASE_URL", "mysql://root:hunter2@db/festival"),
    ],
)
def test_a_bad_value_is_one_message_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    message = str(info.value)
    assert message.startswith(f"invalid setting {variable}")
    assert "\n" not in message
    assert "hunter2" not in message


def test_the_password_never_appears_in_displays() -> None:
    s = load_settings({"database_url": "postgresql://ops:s3cr3t@db.example:5432/festival"}, None)
    assert "s3cr3t" not in s.redacted_dsn
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(s.model_dump())
    assert redact_dsn("postgresql://u:p@h/d?password=p2&sslmode=require") == (
        "postgresql://u:***@h/d?password=***&sslmode=require"
    )


def test_variable_names_match_in_any_case_and_a_missing_or_empty_dotenv_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("monitoring_batch_size=100\nexport Monitoring_Bell=yes\nOTHER=1\n")
    monkeypatch.setenv("monitoring_interval_medium", "60000")
    s = load_settings(env_file=str(env))
    assert (s.monitoring_batch_size, s.monitoring_bell, s.monitoring_interval_medium) == (
        100,
        True,
        60000,
    )
    empty = tmp_path / "empty.env"
    empty.write_text("")
    for path in (empty, tmp_path / "missing.env", Path("/dev/null")):
        assert load_settings(env_file=str(path)).monitoring_batch_size == 500


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # Values as an environment or a .env file spells them.
        ("monitoring_batch_size", " 42 ", 42),
        ("monitoring_batch_size", "+7", 7),
        ("monitoring_batch_size", "1_000", 1000),
        ("monitoring_batch_size", "12.00", 12),
        ("monitoring_batch_size", 3.0, 3),
        ("monitoring_bell", "YES", True),
        ("monitoring_bell", "off", False),
        ("monitoring_bell", "0", False),
        ("monitoring_spike_rate_percent", " 5.5 ", Decimal("5.5")),
        ("monitoring_spike_rate_percent", 7.25, Decimal("7.25")),
        ("monitoring_data_dir", "/srv/festmon", Path("/srv/festmon")),
        ("monitoring_operator", "", ""),
        ("database_url", "  ", None),
    ],
)
def test_values_convert_from_their_text(name: str, value: object, expected: object) -> None:
    assert getattr(load_settings({name: value}, env_file=None), name) == expected


INT4_MAX = 2_147_483_647
MS_FIELDS = [name for name in Settings.model_fields if name.endswith(("_ms", "interval_critical"))]


@pytest.mark.parametrize("name", MS_FIELDS)
def test_a_timeout_above_int4_is_a_setting_error_and_int4_is_accepted(name: str) -> None:
    """PostgreSQL's timeouts and int4 columns stop at 2^31-1 ms: refused when read, not later
    when a connection or a statement fails."""
    assert getattr(load_settings({name: str(INT4_MAX)}, env_file=None), name) == INT4_MAX
    with pytest.raises(SettingsError) as info:
        load_settings({name: str(INT4_MAX + 1)}, env_file=None)
    assert str(info.value).startswith(f"invalid setting {name.upper()}='{INT4_MAX + 1}': ")


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:pw@db:0/festival",
        "postgresql://u:pw@db:65536/festival",
        "postgresql://u:pw@db:54x/festival",
        "postgresql://u:pw@a:5432,b:99999/festival",
        "postgresql://u:pw@[::1]:70000/festival",
    ],
)
def test_a_dsn_with_a_bad_port_is_a_setting_error(dsn: str) -> None:
    for name in ("database_url", "monitoring_read_url"):
        with pytest.raises(SettingsError) as info:
            load_settings({name: dsn}, env_file=None)
        assert str(info.value).startswith(f"invalid setting {name.upper()}: port ")
        assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("monitoring_batch_size", "1.5"),
        ("monitoring_batch_size", "0"),
        ("monitoring_bell", "maybe"),
        ("monitoring_spike_rate_percent", "NaN"),
        ("monitoring_spike_rate_percent", "0.001"),
        ("monitoring_pooler_mode", "AUTO"),
        ("environment", "staging"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_its_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value}, env_file=None)
    message = str(info.value)
    assert message.startswith(f"invalid setting {name.upper()}={value!r}: ")
    assert "\n" not in message and len(message) < 200


def test_every_invalid_setting_is_counted_and_the_first_is_named() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            {"monitoring_bell": "x", "environment": "q", "monitoring_batch_size": "0"}, None
        )
    assert str(info.value).startswith("invalid setting ENVIRONMENT='q': ")
    assert str(info.value).endswith(" (and 2 more invalid settings)")


def test_pooler_mode_defaults_to_auto() -> None:
    assert load_settings(env_file=None).monitoring_pooler_mode is PoolerMode.AUTO


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MONITORING_") and k not in ("DATABASE_URL", "ENVIRONMENT")
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "festmon_tui", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_the_cli_reports_a_bad_setting_in_one_line_and_exits_2() -> None:
    result = _cli("db", "status", env={"MONITORING_INTERVAL_CRITICAL": "0"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("festmon: invalid setting MONITORING_INTERVAL_CRITICAL='0': ")
    assert "Traceback" not in result.stderr


def test_the_cli_reports_a_bad_option_value_in_one_line_and_exits_2() -> None:
    result = _cli("db", "migrate", "--monitoring-cleanup-retention-days", "-3")
    assert result.returncode == 2
    assert "MONITORING_CLEANUP_RETENTION_DAYS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_command_is_one_line_and_exit_2() -> None:
    result = _cli("frobnicate")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_a_clear_message_without_the_password() -> None:
    result = _cli(
        "db",
        "status",
        env={
            "DATABASE_URL": "postgresql://ops:topsecret@127.0.0.1:1/festival",
            "MONITORING_CONNECT_TIMEOUT_MS": "2000",
        },
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_which_database_url_then_libpq_then_embedded_and_never_embedded_in_production() -> None:
    libpq = {"PGHOST": "db.example", "PGUSER": "ops", "PGPASSWORD": "Pw-Libpq-1"}
    url = load_settings({"database_url": "postgresql://ops:Pw-Url-2@db/festival"}, None)
    assert url.database(libpq).kind == "url"
    assert "Pw-Url-2" not in url.database(libpq).label
    plain = load_settings({}, env_file=None)
    choice = plain.database(libpq)
    assert (choice.kind, choice.dsn) == ("libpq", "postgresql://")
    assert choice.label == "libpq environment (PGHOST=db.example, PGUSER=ops)"
    assert plain.database({"PGSERVICE": "festival night"}).dsn == (
        "postgresql://?service=festival%20night"
    )
    assert plain.database({}).kind == "embedded"
    production = load_settings({"environment": "production"}, env_file=None)
    assert production.database(libpq).kind == "libpq"
    with pytest.raises(SettingsError) as info:
        production.database({})
    assert str(info.value).startswith("no database: set DATABASE_URL")


def test_parse_reads_only_the_values_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_BATCH_SIZE", "99")
    parsed = Settings.parse({"monitoring_race_window_ms": "1500", "not_a_setting": "x"})
    assert (parsed.monitoring_race_window_ms, parsed.monitoring_batch_size) == (1500, 500)
    with pytest.raises(SettingsError) as info:
        Settings.parse({"monitoring_race_window_ms": "0"})
    assert str(info.value).startswith("invalid setting MONITORING_RACE_WINDOW_MS='0': ")
