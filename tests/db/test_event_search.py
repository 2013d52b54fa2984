"""The event list's free-text search: what it matches, its trigram indexes, life without them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from festmon_tui.db.events import SEARCH_SQL, EventRepository, like_pattern, search_event_id
from festmon_tui.models import EventFilter, EventStatus
from festmon_tui.resources import migrations_dir

V0010 = migrations_dir() / "monitoring" / "V0010__event_search_trigram_indexes.sql"
TRGM_INDEXES = {"idx_monitoring_events_card_trgm", "idx_monitoring_events_transaction_trgm"}
TX = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


@pytest.fixture
async def events(db_dsn: str) -> AsyncIterator[EventRepository]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        yield EventRepository(pool)
    finally:
        await pool.close()


async def _event(conn: asyncpg.Connection, card: str, tx: uuid.UUID | None = None) -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('transaction_failure', 'HIGH', 'search_test', $1, $2)",
        card,
        tx,
    )
    return event_id


async def _found(repo: EventRepository, search: str) -> set[int]:
    return {e.event_id for e in await repo.list(EventFilter(search=search, limit=100))}


async def _check_matches(conn: asyncpg.Connection, repo: EventRepository) -> None:
    """Every search of the matching rules finds exactly its events."""
    # Event ids whose digits appear in no card or transaction id below.
    await conn.execute("SELECT setval('monitoring_events_event_id_seq', 987654320)")
    mixed = await _event(conn, "Card-AbC-0042")
    percent = await _event(conn, "50%_off")
    plain = await _event(conn, "50xxoff")
    with_tx = await _event(conn, "other", TX)
    cases = {
        "abc-00": {mixed},  # any case, a substring
        "CARD-ABC": {mixed},
        "50%_": {percent},  # % and _ are the characters, not wildcards
        "0%": {percent},
        "4b5a-6978": {with_tx},  # a piece of the transaction id
        "0F1E2D3C": {with_tx},
        str(plain): {plain},  # the event id exactly (no card holds these digits)
        "nothing-like-it": set(),
    }
    found = {search: await _found(repo, search) for search in cases}
    assert found == cases


async def test_the_search_matches_cards_in_any_case_transaction_ids_and_event_ids_literally(
    conn: asyncpg.Connection, events: EventRepository
) -> None:
    await _check_matches(conn, events)


def test_the_pattern_escapes_like_wildcards_and_only_plain_digits_are_an_event_id() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"
    assert search_event_id("42") == 42
    assert search_event_id("007") is None  # event 7 prints as "7"
    assert search_event_id("٤٢") is None  # Arabic-Indic digits are digits, not an id
    assert search_event_id(str(2**63)) is None  # past bigint: no event has it


async def test_the_search_statement_can_use_the_trigram_indexes(
    conn: asyncpg.Connection,
) -> None:
    indexes = {
        r["indexname"]
        for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'monitoring_events'"
        )
    }
    assert indexes >= TRGM_INDEXES
    # Enough events (and their statistics) for the planner to weigh reading them all.
    await conn.execute(
        "INSERT INTO monitoring_events (event_type, severity, detection_algorithm, card_id,"
        " transaction_id, fingerprint, status)"
        " SELECT 'transaction_failure', 'HIGH', 'search_test', 'card-' || lpad(i::text, 7, '0'),"
        " md5(i::text)::uuid, 'search:' || i, 'OPEN' FROM generate_series(1, 20000) AS i"
    )
    await conn.execute("ANALYZE monitoring_events")
    await conn.execute("SET enable_seqscan = off")  # a small table: ask whether it *can*
    plan = "\n".join(
        r[0]
        for r in await conn.fetch(
            "EXPLAIN " + SEARCH_SQL,
            None,
            None,
            None,
            None,
            None,
            501,
            like_pattern("d-00123"),
            None,
        )
    )
    assert "idx_monitoring_events_card_trgm" in plan, plan
    assert "idx_monitoring_events_transaction_trgm" in plan, plan


async def test_without_pg_trgm_the_search_finds_the_same_events(
    conn: asyncpg.Connection, events: EventRepository
) -> None:
    await conn.execute("DROP EXTENSION pg_trgm CASCADE")  # and the two indexes with it
    await _check_matches(conn, events)


async def test_the_migration_step_degrades_to_a_notice_where_pg_trgm_cannot_be_created(
    conn: asyncpg.Connection,
) -> None:
    """A role without CREATE on the database cannot create the extension: no error, no index."""
    await conn.execute("DROP EXTENSION pg_trgm CASCADE")
    role = f"festmon_no_ext_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} NOLOGIN")
    notices: list[str] = []
    conn.add_log_listener(lambda _c, message: notices.append(str(message.message)))
    try:
        await conn.execute(f"SET ROLE {role}")
        await conn.execute(V0010.read_text())
        await conn.execute("RESET ROLE")
        assert not await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname='pg_trgm'")
        assert any("pg_trgm not available" in n for n in notices), notices
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = ANY($1::text[])",
            sorted(TRGM_INDEXES),
        )
        assert indexes == 0
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute(f"DROP ROLE {role}")


NOTES_INDEXES = {
    "idx_monitoring_events_notes_trgm",
    "idx_monitoring_events_owner_trgm",
    "idx_monitoring_event_actions_note_trgm",
    "idx_monitoring_event_actions_operator_trgm",
    "idx_monitoring_event_actions_os_user_trgm",
}


async def _history(conn: asyncpg.Connection) -> dict[str, int]:
    """Events found only through their notes and history (no id or card holds these words)."""
    await conn.execute("SELECT setval('monitoring_events_event_id_seq', 987654320)")
    resolved = await _event(conn, "card-r")
    await conn.execute(
        "SELECT resolve_monitoring_event($1, $2::jsonb, 'Reader at BAR 3 swapped')",
        resolved,
        '{"os_user": "ops", "host": "h"}',
    )
    noted = await _event(conn, "card-n")
    await conn.execute(
        "SELECT add_monitoring_event_note($1, $2::jsonb, 'holder phoned: double charge')",
        noted,
        '{"os_user": "ops", "host": "h", "operator": "Maria"}',
    )
    owned = await _event(conn, "card-o")
    await conn.execute(
        "SELECT acknowledge_monitoring_event($1, $2::jsonb, NULL)",
        owned,
        '{"os_user": "jdoe", "host": "h"}',
    )
    await _event(conn, "card-untouched")
    return {"resolved": resolved, "noted": noted, "owned": owned}


async def test_the_search_finds_events_by_their_notes_owner_and_action_history(
    conn: asyncpg.Connection, events: EventRepository
) -> None:
    ids = await _history(conn)
    cases = {
        "bar 3": {ids["resolved"]},  # the resolution note, any case
        "double charge": {ids["noted"]},  # a note in the action history
        "maria": {ids["noted"]},  # the operator who wrote it
        "jdoe": {ids["owned"]},  # the OS user who acknowledged it (owner and history)
        "ops": {ids["resolved"], ids["noted"]},
        "swapped%": set(),  # % is a character, not a wildcard
    }
    found = {search: await _found(events, search) for search in cases}
    assert found == cases


async def test_a_search_of_the_history_lists_each_event_once_and_keeps_the_filters(
    conn: asyncpg.Connection, events: EventRepository
) -> None:
    ids = await _history(conn)
    for note in ("first call", "second call"):
        await conn.execute(
            "SELECT add_monitoring_event_note($1, $2::jsonb, $3)",
            ids["owned"],
            '{"os_user": "jdoe", "host": "h"}',
            note,
        )
    found = await events.list(EventFilter(search="call", limit=100))
    assert [e.event_id for e in found] == [ids["owned"]]
    closed = EventFilter(search="ops", statuses=frozenset({EventStatus.RESOLVED}), limit=100)
    assert {e.event_id for e in await events.list(closed)} == {ids["resolved"]}


async def test_the_history_search_can_use_trigram_indexes_on_every_arm(
    conn: asyncpg.Connection,
) -> None:
    indexes = {
        r["indexname"]
        for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes"
            " WHERE tablename IN ('monitoring_events', 'monitoring_event_actions')"
        )
    }
    assert indexes >= NOTES_INDEXES
    await conn.execute("SET enable_seqscan = off")  # a small table: ask whether it *can*
    plan = "\n".join(
        r[0]
        for r in await conn.fetch(
            "EXPLAIN " + SEARCH_SQL, None, None, None, None, None, 501, like_pattern("bar 3"), None
        )
    )
    for index in NOTES_INDEXES:
        assert index in plan, plan


async def test_without_pg_trgm_the_history_search_finds_the_same_events(
    conn: asyncpg.Connection, events: EventRepository
) -> None:
    await conn.execute("DROP EXTENSION pg_trgm CASCADE")
    ids = await _history(conn)
    assert await _found(events, "double charge") == {ids["noted"]}
    assert await _found(events, "BAR 3") == {ids["resolved"]}
