"""Large claims are judged set-based, with the per-row path's results (issue 19.3).

A first run claims hundreds of thousands of rows per rule run; the rules that search each
row's neighbours did one index search per row (~12 000 rows/s at 10 M log rows). A claim of at
least catch_up_set_rows rows (V0050) is now judged by one read of its span with window
functions. These tests run the same random history on two clones — one with every claim
set-based (catch_up_set_rows = 1), one with none (the per-row path) — and require the same
events after every job: a first run whose lookback starts inside the history (cards with rows
on both sides of it, rows whose ids do not follow their time), late commits, rolled-back ids,
failed, mirror and balance-less rows, scans with ignored statuses.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from tests.db.test_critical_row_pass import BRUTE_FORCE_CHAIN_BREAKS, NO_SIGNAL, Traffic, _events

SET_BASED_RULES = ("concurrent_transaction_detection",)

# BRUTE_FORCE_CHAIN_BREAKS over the rows the first run judges: those inside its lookback, and
# every row above the highest id of that moment
CHAIN_BREAKS_IN_LOOKBACK = f"""
SELECT b.fingerprint
  FROM ({BRUTE_FORCE_CHAIN_BREAKS.replace("ORDER BY 1", "")}) AS b
  JOIN app_transaction_log AS l ON 'tx:' || l.transaction_id::text = b.fingerprint
  JOIN monitoring_detector_watermarks AS w ON w.detector_name = 'balance_chain_break'
 WHERE l.log_id > w.initial_end_id OR l."timestamp" >= w.initial_cutoff
 ORDER BY 1
"""

INSERT_LOG = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 previous_balance, new_balance, "timestamp",
                                 client_request_id, edge_function_name, transaction_id)
VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7, $8, $9, $10::uuid)
"""
INSERT_SCAN = """
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status) VALUES ($1, $2, $3)
"""


def log_rows(traffic: Traffic, count: int, cards: list[str]) -> list[tuple[Any, ...]]:
    """Traffic's random rows (test_critical_row_pass), as INSERT_LOG's arguments."""
    return [
        (
            r["card"],
            r["kind"],
            r["status"],
            r["amount"],
            r["previous"],
            r["new"],
            r["at"],
            r["request"],
            r["edge_function"],
            r["transaction_id"],
        )
        for r in traffic.rows(count, cards)
    ]


class Scans:
    """Random scans, the same for both clones (every value chosen here)."""

    def __init__(self, seed: int, base: datetime) -> None:
        self.rng = random.Random(seed)
        self.clock = base

    def rows(self, count: int, cards: list[str]) -> list[tuple[Any, ...]]:
        rng = self.rng
        rows = []
        for _ in range(count):
            self.clock += timedelta(milliseconds=rng.choice([100, 700, 2000, 4500, 6000]))
            # now and then a device clock behind: ids do not follow time
            at = self.clock - (timedelta(minutes=3) if rng.random() < 0.04 else timedelta(0))
            status = rng.choice(["success", "success", "success", "duplicate", "failure"])
            rows.append((rng.choice(cards), at, status))
        return rows


async def _write(
    conns: list[asyncpg.Connection], log: list[tuple[Any, ...]], scans: list[tuple[Any, ...]]
) -> None:
    for c in conns:
        await c.executemany(INSERT_LOG, log)
        await c.executemany(INSERT_SCAN, scans)


async def _run_critical(conn: asyncpg.Connection, cutoff: datetime | None) -> str:
    """One critical run; with `cutoff`, the first run, whose lookback starts at `cutoff`.

    A first run's lookback starts at now() - initial_lookback, and now() is the moment its
    transaction began: two clones' first runs, milliseconds apart, would each judge a slightly
    different history (a window the spike rule counts in one and not in the other). One
    transaction that sets initial_lookback to now() - cutoff and runs gives every rule's
    watermark the same initial_cutoff in both clones.
    """
    if cutoff is None:
        return str(await conn.fetchval("SELECT run_critical_detection_batches(0)"))
    async with conn.transaction():
        await conn.execute(
            "UPDATE monitoring_settings SET initial_lookback = now() - $1::timestamptz"
            " WHERE id = 1",
            cutoff,
        )
        result = await conn.fetchval("SELECT run_critical_detection_batches(0)")
    # every watermark with a lookback (the card ledger has none) started at the one cutoff
    cutoffs = await conn.fetch(
        "SELECT DISTINCT initial_cutoff FROM monitoring_detector_watermarks"
        " WHERE detector_name <> 'card_ledger'"
    )
    assert [r["initial_cutoff"] for r in cutoffs] == [cutoff]
    return str(result)


async def test_set_based_claims_find_what_the_per_row_path_finds(
    two_databases: tuple[str, str],
) -> None:
    set_dsn, row_dsn = two_databases
    bulk, per_row = await asyncpg.connect(set_dsn), await asyncpg.connect(row_dsn)
    both = [bulk, per_row]
    late: list[asyncpg.Connection] = []
    set_based_runs: dict[str, int] = dict.fromkeys(SET_BASED_RULES, 0)
    try:
        base = await bulk.fetchval("SELECT date_trunc('second', now()) - interval '30 minutes'")
        # the first run's lookback starts here in both clones (see _run_critical)
        cutoff = base + timedelta(minutes=6)
        for c, threshold in ((bulk, 1), (per_row, 2_000_000_000)):
            await c.execute(NO_SIGNAL)
            await c.execute(
                "UPDATE monitoring_settings SET catch_up_set_rows = $1,"
                " detection_batch_size = 120 WHERE id = 1",
                threshold,
            )
        traffic, scans = Traffic(193, base), Scans(193, base)
        # late rows on a card of their own (a payment holds its card's row lock, so no later
        # row of that card commits before it)
        cards, late_cards = traffic.cards[:-1], traffic.cards[-1:]
        # the history before the first run: its lookback starts inside it
        await _write(both, log_rows(traffic, 700, cards), scans.rows(400, cards))

        for step in range(8):
            if step % 2 == 0:
                # payments in progress while the jobs run (gaps, then late rows), and ids
                # that never commit
                late = [await asyncpg.connect(dsn) for dsn in (set_dsn, row_dsn)]
                for c in late:
                    await c.execute("BEGIN")
                await _write(late, log_rows(traffic, 4, late_cards), scans.rows(4, late_cards))
                for c in both:
                    await c.execute("BEGIN")
                await _write(both, log_rows(traffic, 3, cards), scans.rows(3, cards))
                for c in both:
                    await c.execute("ROLLBACK")
            await _write(both, log_rows(traffic, 90, cards), scans.rows(40, cards))
            # a retry (two rows of one request 0.5 s apart: no race) amid the rows
            at = traffic.base + traffic.clock - timedelta(seconds=30)
            retry = [
                (
                    cards[step % 3],
                    "bar_order",
                    "completed",
                    "5.00",
                    None,
                    None,
                    at + offset,
                    f"retry-{step}",
                    None,
                    str(uuid.UUID(int=step * 2 + i)),
                )
                for i, offset in enumerate((timedelta(0), timedelta(milliseconds=500)))
            ]
            await _write(both, retry, [])

            results = []
            for c in both:
                results.append(json.loads(await _run_critical(c, cutoff if step == 0 else None)))
            for result in results:
                assert result["success"] is True, result
            for rule in SET_BASED_RULES:
                set_based_runs[rule] += bool(results[0]["rules"][rule].get("set_based"))
                assert "set_based" not in results[1]["rules"][rule], (step, rule)
                assert (
                    results[0]["rules"][rule]["rows_examined"]
                    == results[1]["rules"][rule]["rows_examined"]
                ), (step, rule)
            for c in late:
                await c.execute("COMMIT")
                await c.close()
            late = []
            assert await _events(bulk) == await _events(per_row), step

        for c in both:  # the rows left behind and the last late rows
            while json.loads(await c.fetchval("SELECT run_critical_detection_batches(60000)"))[
                "backlog"
            ]:
                pass
        events = await _events(bulk)
        assert events == await _events(per_row)
        found = {e[0] for e in events}
        # the history has something for each rule to find
        assert set(SET_BASED_RULES) | {"balance_chain_break"} <= found, found
        assert all(set_based_runs.values()), set_based_runs
        boundaries = await bulk.fetch(
            "SELECT initial_end_id FROM monitoring_detector_watermarks"
            " WHERE detector_name IN ('balance_chain_break', 'temporal_duplicate_detection')"
        )
        assert all(b["initial_end_id"] for b in boundaries)  # lookbacks inside the history
        # and the chain breaks are those of a walk of every card's rows, inside the lookback
        breaks = [r["fingerprint"] for r in await bulk.fetch(CHAIN_BREAKS_IN_LOOKBACK)]
        assert [e[1] for e in events if e[0] == "balance_chain_break"] == breaks
    finally:
        for c in [bulk, per_row, *late]:
            await c.close()


async def test_a_small_claim_keeps_the_per_row_path(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE monitoring_settings SET catch_up_set_rows = 5 WHERE id = 1")
    base = await conn.fetchval("SELECT now() - interval '1 minute'")
    traffic, scans = Traffic(7, base), Scans(7, base)
    await _write([conn], log_rows(traffic, 4, ["K1"]), scans.rows(4, ["K1"]))
    small = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(0)"))
    await _write([conn], log_rows(traffic, 5, ["K1"]), scans.rows(5, ["K1"]))
    large = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(0)"))
    for rule in SET_BASED_RULES:
        assert "set_based" not in small["rules"][rule], rule
        assert large["rules"][rule]["set_based"] is True, rule
