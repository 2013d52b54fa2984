"""The event search's statement alone: an earlier statement against SEARCH_SQL, interleaved.

Usage:
    python benchmarks/bench_event_search.py [--events 100000] [--rounds 60]
        [--against strpos|v0010] [--history-every 10]

--against strpos (the default) compares with the statement before V0010; --against v0010 with
the V0010 statement (card / transaction / event id only) that V0016's search of notes and the
action history replaced. --history-every N gives every Nth event a resolution note and a note
action by an operator (words no card id contains, so both statements find the same events).

Starts its own embedded PostgreSQL in a temp dir, applies both migration sets (V0010 creates the
trigram indexes where pg_trgm is available), loads the events of bench_dashboard.py, and runs
the dashboard's searches (a card-id prefix, the same terms as bench_dashboard's search measure)
through prepared statements the way the service does: each round the old statement, then the
new, checking that both return the same events. Prints median and p95 per statement (ms) and
the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from bench_dashboard import load_events

from festmon_tui.db.embedded import EmbeddedServer
from festmon_tui.db.events import SEARCH_SQL, like_pattern, search_event_id

# The list statement's search as it was before V0010 (commit 42ca0f0): strpos, no index.
OLD_SEARCH_SQL = """
SELECT
    event_id, event_type, severity, detection_algorithm, status, detection_timestamp,
    card_id, transaction_id, affected_amount, confidence_score, event_data, context_data,
    occurrence_count, last_seen_at, acknowledged_by, acknowledged_at, resolved_at,
    resolution_notes, updated_at
FROM monitoring_events
WHERE ($1::text[] IS NULL OR severity = ANY($1::text[]))
  AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
  AND ($4::text IS NULL OR card_id = $4::text)
  AND ($5::timestamptz IS NULL OR last_seen_at >= $5::timestamptz)
  AND ($6::text IS NULL
       OR strpos(lower(card_id), lower($6::text)) > 0
       OR strpos(transaction_id::text, lower($6::text)) > 0
       OR event_id::text = $6::text)
ORDER BY last_seen_at DESC, event_id DESC
LIMIT $7
"""
# SEARCH_SQL as V0010 left it (before V0016 searched notes and the action history).
V0010_SEARCH_SQL = (
    OLD_SEARCH_SQL.split("WHERE")[0]
    + """WHERE ($1::text[] IS NULL OR severity = ANY($1::text[]))
  AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
  AND ($4::text IS NULL OR card_id = $4::text)
  AND ($5::timestamptz IS NULL OR last_seen_at >= $5::timestamptz)
  AND (lower(card_id) LIKE lower($7::text)
       OR transaction_id::text LIKE lower($7::text)
       OR event_id = $8::bigint)
ORDER BY last_seen_at DESC, event_id DESC
LIMIT $6
"""
)
HISTORY_SQL = """
UPDATE monitoring_events SET resolution_notes = 'reader swapped at bar ' || (event_id % 10)
WHERE event_id % $1 = 0;
"""
ACTIONS_SQL = """
INSERT INTO monitoring_event_actions
    (event_id, action, from_status, to_status, actor_os_user, actor_operator, note)
SELECT event_id, 'note', status, status, 'ops', 'operator-' || (event_id % 50),
       'holder phoned about bar ' || (event_id % 10)
FROM monitoring_events WHERE event_id % $1 = 0
"""
ACTIVE = ["OPEN", "INVESTIGATING"]  # the dashboard's default status filter
WINDOW = 501  # the dashboard asks for its window (500) and one more


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def measure(dsn: str, rounds: int, against: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%trgm'"
        )
        print(f"trigram indexes: {indexes}; load before {os.getloadavg()}")
        old = await conn.prepare(OLD_SEARCH_SQL if against == "strpos" else V0010_SEARCH_SQL)
        new = await conn.prepare(SEARCH_SQL)
        label = f"old ({against})"
        times: dict[str, list[float]] = {label: [], "new (SEARCH_SQL)": []}
        found = []
        for index in range(rounds):
            term = f"card-00{(index * 37) % 400 + 100:03d}"
            started = time.perf_counter()
            if against == "strpos":
                before = await old.fetch(None, None, ACTIVE, None, None, term, WINDOW)
            else:
                before = await old.fetch(
                    None, None, ACTIVE, None, None, WINDOW, like_pattern(term), None
                )
            times[label].append(time.perf_counter() - started)
            started = time.perf_counter()
            after = await new.fetch(
                None, None, ACTIVE, None, None, WINDOW, like_pattern(term), search_event_id(term)
            )
            times["new (SEARCH_SQL)"].append(time.perf_counter() - started)
            assert [r["event_id"] for r in before] == [r["event_id"] for r in after], term
            found.append(len(after))
        print(f"load after {os.getloadavg()}; events found per search {min(found)}-{max(found)}")
        for name, values in times.items():
            ms = [v * 1000 for v in values]
            print(
                f"{name:18s} n={len(ms)} median {statistics.median(ms):6.1f} ms  "
                f"p95 {p95(ms):6.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f})"
            )
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="festmon-bench-search-"))
    server = EmbeddedServer(workdir / "pgdata")
    dsn = await asyncio.to_thread(server.start)
    try:
        load_s = await load_events(dsn, args.events)
        print(f"loaded {args.events} events in {load_s:.1f} s")
        if args.history_every:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(HISTORY_SQL, args.history_every)
                await conn.execute(ACTIONS_SQL, args.history_every)
                await conn.execute("ANALYZE monitoring_events; ANALYZE monitoring_event_actions")
            finally:
                await conn.close()
        await measure(dsn, args.rounds, args.against)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--against", choices=("strpos", "v0010"), default="strpos")
    parser.add_argument("--history-every", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
