"""Pooler detection and connection options."""

from __future__ import annotations

import pytest

from festmon_tui.db.connect import (
    ConnectOptions,
    _connect_kwargs,
    dsn_summary,
    is_pooled,
    strip_pgbouncer_hint,
)
from festmon_tui.settings import PoolerMode, load_settings


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p@aws-0-eu-west-1.pooler.supabase.com:6543/postgres", True),
        ("postgresql://u:p@db.example:6432/festival", True),
        ("postgresql://u:p@db.example:5432/festival?pgbouncer=true", True),
        ("postgresql://u:p@db.example:5432/festival", False),
        ("postgresql://u@/festmon?host=/tmp/sock", False),
    ],
)
def test_auto_mode_recognises_transaction_poolers(dsn: str, expected: bool) -> None:
    assert is_pooled(dsn, PoolerMode.AUTO) is expected


def test_an_explicit_pooler_mode_wins_over_detection() -> None:
    assert is_pooled("postgresql://db.example:5432/x", PoolerMode.TRANSACTION)
    assert not is_pooled("postgresql://db.example:6543/x", PoolerMode.NONE)


def test_dsn_summary_never_contains_the_password() -> None:
    summary = dsn_summary("postgresql://ops:secret@db.example:5433/festival")
    assert summary == {"host": "db.example", "port": "5433", "database": "festival", "user": "ops"}


@pytest.mark.parametrize(
    ("dsn", "clean", "hinted"),
    [
        ("postgresql://u:p@db:5432/f?pgbouncer=true", "postgresql://u:p@db:5432/f", True),
        (
            "postgresql://u@/f?host=/run/pg&pgbouncer=True&port=6000",
            "postgresql://u@/f?host=/run/pg&port=6000",
            True,
        ),
        ("postgresql://u:p@db/f?pgbouncer=false", "postgresql://u:p@db/f", False),
        ("postgresql://u:p@db/f?sslmode=require", "postgresql://u:p@db/f?sslmode=require", False),
    ],
)
def test_the_pgbouncer_hint_is_removed_from_the_url(dsn: str, clean: str, hinted: bool) -> None:
    assert strip_pgbouncer_hint(dsn) == (clean, hinted)


def test_the_hint_makes_the_options_pooler_safe_and_never_reaches_asyncpg() -> None:
    settings = load_settings(
        {"database_url": "postgresql://u:p@db:5432/f?pgbouncer=true"}, env_file=None
    )
    assert settings.dsn is not None
    options = ConnectOptions.from_settings(settings, settings.dsn)
    assert options.pooled and options.pooler_safe and not options.supports_listen
    assert options.dsn == "postgresql://u:p@db:5432/f" and not options.probe


def test_the_startup_packet_holds_only_what_a_stock_pgbouncer_accepts() -> None:
    # PgBouncer 1.18 tracks application_name and TimeZone; anything else is refused at login.
    for mode in PoolerMode:
        settings = load_settings(
            {"database_url": "postgresql://u:p@db:5432/f", "monitoring_pooler_mode": mode},
            env_file=None,
        )
        options = ConnectOptions.from_settings(settings, "postgresql://u:p@db:5432/f")
        assert set(_connect_kwargs(options)["server_settings"]) == {"application_name", "timezone"}


def test_a_unix_socket_dsn_on_the_pgbouncer_port_is_pooled() -> None:
    assert is_pooled("postgresql://u@/f?host=/var/run/postgresql&port=6432", PoolerMode.AUTO)
