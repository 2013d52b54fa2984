"""concurrent_transaction_detection finds a new row's predecessor from one read of the time span.

The rule used to search the (card_id, "timestamp", log_id) index once per new row for the row
before it; now the new rows within a minute of the newest take their predecessors from one read
of the rows of their span (plus race_window before it), grouped by card in memory, and only the
older new rows are searched one by one. These tests compare the rule with a brute-force pairing
of every card's rows, on traffic mixing both kinds of new rows, late rows (logged after rows
with later timestamps), failed rows, retries of one request and rows of the mirror trigger.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from datetime import datetime, timedelta

import asyncpg

Row = tuple[int, str, datetime, str, str | None, str | None]  # id, card, ts, status, crid, edge
WINDOW = timedelta(seconds=2)


def _brute_force_pairs(rows: list[Row], window: timedelta = WINDOW) -> set[tuple[int, int]]:
    """Consecutive qualifying rows of one card less than the window apart (the rule's
    definition): not failed, not written by the mirror trigger, not two carrying one request."""
    pairs: set[tuple[int, int]] = set()
    by_card: dict[str, list[Row]] = {}
    for row in rows:
        if row[3] != "failed" and row[5] != "bar-order-trigger":
            by_card.setdefault(row[1], []).append(row)
    for card_rows in by_card.values():
        card_rows.sort(key=lambda r: (r[2], r[0]))
        for first, second in itertools.pairwise(card_rows):
            same_request = first[4] is not None and first[4] == second[4]
            if second[2] - first[2] < window and not same_request:
                pairs.add((first[0], second[0]))
    return pairs


async def _insert(
    conn: asyncpg.Connection, specs: list[tuple[str, timedelta, str, str | None, str | None]]
) -> list[Row]:
    base = await conn.fetchval("SELECT date_trunc('second', now()) - interval '10 minutes'")
    rows: list[Row] = []
    for card, offset, status, crid, edge in specs:
        log_id = await conn.fetchval(
            """
            INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                             "timestamp", client_request_id, edge_function_name)
            VALUES ($1, 'bar_order', $2, 4.50, $3, $4, $5)
            RETURNING log_id
            """,
            card,
            status,
            base + offset,
            crid,
            edge,
        )
        rows.append((log_id, card, base + offset, status, crid, edge))
    return rows


def _traffic(
    rng: random.Random, count: int
) -> list[tuple[str, timedelta, str, str | None, str | None]]:
    """Rows on six cards over three minutes, in random order: close pairs, ties, far rows."""
    specs: list[tuple[str, timedelta, str, str | None, str | None]] = []
    for _ in range(count):
        offset = timedelta(
            milliseconds=rng.choice([rng.randrange(0, 180_000), rng.randrange(0, 180) * 1000])
        )
        status = rng.choices(["completed", "failed", "pending"], weights=[8, 1, 1])[0]
        crid = rng.choice([None, None, f"req-{rng.randrange(5)}"])
        edge = rng.choices([None, "bar-order-trigger"], weights=[9, 1])[0]
        specs.append((f"R{rng.randrange(6)}", offset, status, crid, edge))
    return specs


async def _anchor(conn: asyncpg.Connection) -> None:
    """A first row earlier than all traffic: the rule's first run starts just before the
    earliest row of its lookback, so every row inserted after this one is new to it."""
    await _insert(conn, [("ANCHOR", timedelta(seconds=-60), "completed", None, None)])


async def _run(conn: asyncpg.Connection) -> None:
    result = json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('concurrent_transaction_detection')")
    )
    assert result["success"] is True, result


async def _events(conn: asyncpg.Connection) -> dict[str, tuple[int, set[tuple[int, int]]]]:
    rows = await conn.fetch(
        "SELECT card_id, occurrence_count, event_data FROM monitoring_events"
        " WHERE detection_algorithm = 'concurrent_transaction_detection'"
    )
    found: dict[str, tuple[int, set[tuple[int, int]]]] = {}
    for row in rows:
        pairs = {
            (p["first_log_id"], p["second_log_id"]) for p in json.loads(row["event_data"])["pairs"]
        }
        assert row["card_id"] not in found, "one active event per card"
        found[row["card_id"]] = (row["occurrence_count"], pairs)
    return found


def _per_card(pairs: set[tuple[int, int]], rows: list[Row]) -> Counter[str]:
    card_of = {r[0]: r[1] for r in rows}
    return Counter(card_of[first] for first, _ in pairs)


async def test_every_pair_is_found_once_across_runs_with_late_and_far_rows(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("UPDATE monitoring_settings SET evidence_list_limit = 1000")
    rng = random.Random(20261127)
    await _anchor(conn)
    first = await _insert(conn, _traffic(rng, 220))
    await _run(conn)
    first_pairs = _brute_force_pairs(first)
    assert first_pairs, "the traffic has races"

    # Rows logged later, many with timestamps before rows examined already (late rows), some
    # more than a minute older than the newest new row (searched one by one).
    second = await _insert(conn, _traffic(rng, 120))
    await _run(conn)
    all_rows = first + second
    second_ids = {r[0] for r in second}
    second_pairs = {
        p for p in _brute_force_pairs(all_rows) if p[0] in second_ids or p[1] in second_ids
    }
    assert any(r[2] < max(x[2] for x in second) - timedelta(minutes=1) for r in second), (
        "some new rows take the one-by-one search"
    )

    events = await _events(conn)
    expected_count = _per_card(first_pairs, first) + _per_card(second_pairs, all_rows)
    assert {card: count for card, (count, _) in events.items()} == dict(expected_count)
    # The latest run's pairs are the event's evidence: exactly the pairs involving its rows.
    expected_latest = {
        card: {p for p in second_pairs if _per_card({p}, all_rows)[card]}
        for card in _per_card(second_pairs, all_rows)
    }
    assert {card: pairs for card, (_, pairs) in events.items() if card in expected_latest} == (
        expected_latest
    )


async def test_a_window_over_a_minute_searches_every_row_and_finds_the_same_pairs(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "UPDATE monitoring_settings SET evidence_list_limit = 1000, race_window = '90 seconds'"
    )
    rng = random.Random(7)
    await _anchor(conn)
    rows = await _insert(conn, _traffic(rng, 150))
    await _run(conn)

    expected = _brute_force_pairs(rows, timedelta(seconds=90))
    events = await _events(conn)
    assert {card: pairs for card, (_, pairs) in events.items()} == {
        card: {p for p in expected if _per_card({p}, rows)[card]}
        for card in _per_card(expected, rows)
    }
