"""Pooler detection and connection options."""

from __future__ import annotations

import pytest

from festmon_tui.db.connect import dsn_summary, is_pooled
from festmon_tui.settings import PoolerMode


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
