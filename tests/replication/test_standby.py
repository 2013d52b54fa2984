"""festmon on PostgreSQL streaming replication: reads on a hot standby, a failover drill."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import asyncpg
import pytest

from festmon_tui.db.migrations import migrate
from tests.reliability.cli import environment, run
from tests.replication.cluster import ReplicatedPair

_names = itertools.count()


async def _festival(pair: ReplicatedPair) -> str:
    """A fresh migrated database on the primary with one failed payment that debited its card."""
    name = f"festival_{next(_names)}"
    admin = await asyncpg.connect(pair.primary.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pair.primary.dsn(name))
    try:
        await migrate(conn, with_payment_schema=True)
        await _failed_but_debited(conn, "CARD-A")
    finally:
        await conn.close()
    return name


async def _failed_but_debited(conn: asyncpg.Connection, card: str) -> None:
    await conn.execute("INSERT INTO table_cards (id, amount) VALUES ($1, 40.00)", card)
    await conn.execute(
        "INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,"
        " previous_balance, new_balance) VALUES ($1, 'bar_order', 'failed', 10, 50, 40)",
        card,
    )


async def _festmon(dsn: str, *args: str, cwd: Path) -> tuple[int, str, str]:
    result = await run(*args, cwd=cwd, env=environment(DATABASE_URL=dsn))
    return result.returncode, result.stdout, result.stderr


async def test_the_event_list_and_health_read_on_a_hot_standby_match_the_primary(
    pair: ReplicatedPair, tmp_path: Path
) -> None:
    name = await _festival(pair)
    primary, standby = pair.primary.dsn(name), pair.standby.dsn(name)
    code, _, err = await _festmon(primary, "cycle", "--json", cwd=tmp_path)
    assert code == 0, err
    await pair.wait_replayed()

    on_primary = await _festmon(primary, "events", "--format", "json", cwd=tmp_path)
    on_standby = await _festmon(standby, "events", "--format", "json", cwd=tmp_path)
    health = await _festmon(standby, "health", "--json", cwd=tmp_path)

    assert on_standby[0] == 0, on_standby[2]
    assert json.loads(on_standby[1]) == json.loads(on_primary[1])
    assert any(
        e["detection_algorithm"] == "balance_deduction_on_failure"
        for e in json.loads(on_standby[1])
    )
    assert health[0] == 2, health[2]  # one CRITICAL event is active
    assert json.loads(health[1])["status"] == "CRITICAL"


async def test_an_action_sent_to_a_standby_is_refused_in_one_line_and_changes_nothing(
    pair: ReplicatedPair, tmp_path: Path
) -> None:
    name = await _festival(pair)
    await _festmon(pair.primary.dsn(name), "cycle", cwd=tmp_path)
    await pair.wait_replayed()

    code, _, err = await _festmon(
        pair.standby.dsn(name), "ack", "2", "--note", "from the standby", cwd=tmp_path
    )

    assert code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "read-only" in err or "standby" in err, err
    conn = await asyncpg.connect(pair.primary.dsn(name))
    try:
        assert await conn.fetchval("SELECT count(*) FROM monitoring_event_actions") == 0
    finally:
        await conn.close()


@pytest.fixture
def failover_pair() -> ReplicatedPair:
    return ReplicatedPair()


async def test_failover_drill_the_promoted_standby_detects_nothing_twice(
    failover_pair: ReplicatedPair, tmp_path: Path
) -> None:
    pair = failover_pair
    try:
        name = await _festival(pair)
        code, _, err = await _festmon(pair.primary.dsn(name), "cycle", "--json", cwd=tmp_path)
        assert code == 0, err
        await pair.wait_replayed()

        pair.primary.stop()
        pair.standby.promote()
        promoted = pair.standby.dsn(name)
        code, out, err = await _festmon(promoted, "cycle", "--json", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["total_events_created"] == 0
        conn = await asyncpg.connect(promoted)
        try:
            await _failed_but_debited(conn, "CARD-B")
        finally:
            await conn.close()
        code, out, err = await _festmon(promoted, "cycle", "--json", cwd=tmp_path)

        assert code == 0, err
        assert json.loads(out)["total_events_created"] == 1
        events = json.loads(
            (await _festmon(promoted, "events", "--format", "json", cwd=tmp_path))[1]
        )
        deductions = [
            e for e in events if e["detection_algorithm"] == "balance_deduction_on_failure"
        ]
        assert sorted(e["card_id"] for e in deductions) == ["CARD-A", "CARD-B"]
    finally:
        pair.close()
