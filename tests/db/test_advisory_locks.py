"""festmon's advisory locks are named in one place, and Python and SQL agree on their keys."""

from __future__ import annotations

import re

import asyncpg

from festmon_tui.db.locks import ADVISORY_LOCKS, MIGRATE_LOCK_KEY
from festmon_tui.resources import migrations_dir

LOCKS_FILE = "R__monitoring_00_advisory_locks.sql"


async def test_the_sql_lock_names_and_keys_are_the_python_ones(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT lock_name, class_id, object_id FROM monitoring_advisory_locks()"
    )

    assert {r["lock_name"]: (r["class_id"], r["object_id"]) for r in rows} == ADVISORY_LOCKS
    assert len(set(ADVISORY_LOCKS.values())) == len(ADVISORY_LOCKS)  # no two names share a key


async def test_a_named_lock_is_held_on_its_keys_until_the_transaction_ends(
    conn: asyncpg.Connection,
) -> None:
    held = """
        SELECT classid::bigint, objid::bigint, objsubid FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid()
    """
    for name, (class_id, object_id) in ADVISORY_LOCKS.items():
        async with conn.transaction():
            await conn.execute("SELECT monitoring_xact_lock($1)", name)
            locks = {(r["classid"], r["objid"], r["objsubid"]) for r in await conn.fetch(held)}
            assert locks == {(class_id, object_id, 2)}  # objsubid 2: a two-int4 key
        assert await conn.fetch(held) == []


async def test_an_unknown_lock_name_is_refused(conn: asyncpg.Connection) -> None:
    try:
        await conn.execute("SELECT monitoring_xact_lock('no_such_lock')")
    except asyncpg.InvalidParameterValueError as exc:
        assert "unknown advisory lock no_such_lock" in str(exc)
    else:
        raise AssertionError("an unknown lock name was accepted")


def test_no_other_sql_file_takes_an_advisory_lock_by_number() -> None:
    taking = re.compile(r"pg_(try_)?advisory_(xact_)?lock", re.IGNORECASE)
    offenders = [
        path.name
        for path in sorted((migrations_dir() / "monitoring").glob("*.sql"))
        if path.name != LOCKS_FILE and taking.search(path.read_text())
    ]
    assert offenders == []


def test_the_migration_lock_is_outside_the_named_locks_key_space() -> None:
    # pg_locks shows a bigint key as (high 32 bits, low 32 bits, objsubid 1): never equal to a
    # two-int4 key (objsubid 2), and festmon's class is not its high half either.
    high, low = MIGRATE_LOCK_KEY >> 32, MIGRATE_LOCK_KEY & 0xFFFF_FFFF
    assert (high, low) not in set(ADVISORY_LOCKS.values())
