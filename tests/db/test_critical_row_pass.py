"""The critical rules claim their new log rows once per job and judge them as before (issue 19).

Every incremental rule on app_transaction_log claimed its rows on its own: seven reads of the
same new ids and seven gap computations per critical run. A claim now publishes its result for
the rest of its transaction, and a watermark found in exactly the state that claim started
from takes the result instead of claiming again (monitoring_claim_reuse). These tests pin: one
claim per job (every rule's watermark records the same snapshot); a row committed between that
claim and a later rule's statement, in an id the claim could not see, is still the predecessor
it is; and, over random traffic with late commits, failed, mirror and balance-less rows, the
job finds exactly what each rule run on its own (in a transaction of its own: no reuse) finds
on a clone of the same data, and the chain-break events are those of a brute-force walk of
every card's rows.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import log_row, put_card

# the rules that take the critical job's one claim (the spike rule claims its own, larger
# batches: its buckets, R__monitoring_03_rule_system_failure_spike.sql)
LOG_RULES = (
    "balance_deduction_on_failure",
    "consecutive_failures",
    "balance_chain_break",
    "balance_mismatch_detection",
    "negative_balance_detection",
    "concurrent_transaction_detection",
)
CRITICAL_ORDER = (
    "balance_deduction_on_failure",
    "consecutive_failures",
    "system_failure_spike",
    "balance_chain_break",
    "balance_mismatch_detection",
    "negative_balance_detection",
    "temporal_duplicate_detection",
    "concurrent_transaction_detection",
)
INCREMENTAL_MODE = {"balance_mismatch_detection", "negative_balance_detection"}

EVENTS = """
SELECT detection_algorithm, fingerprint, card_id, status, severity, occurrence_count,
       affected_amount, event_data - 'card_updated_at' AS event_data
  FROM monitoring_events
 ORDER BY detection_algorithm, fingerprint, event_id
"""

BRUTE_FORCE_CHAIN_BREAKS = """
WITH s AS (SELECT * FROM monitoring_settings_get()),
chain AS (
    SELECT l.*,
           lag(l.new_balance) OVER (PARTITION BY l.card_id ORDER BY l.log_id) AS prev_new
      FROM app_transaction_log AS l, s
     WHERE l.status = 'completed'
       AND l.new_balance IS NOT NULL
       AND coalesce(l.edge_function_name, '') <> ALL (s.mirror_edge_function_names)
)
SELECT 'tx:' || c.transaction_id::text AS fingerprint
  FROM chain AS c, s
 WHERE c.previous_balance IS NOT NULL
   AND ((c.prev_new IS NOT NULL AND c.previous_balance <> c.prev_new)
        OR (c.transaction_type = ANY (s.credit_transaction_types)
            AND c.new_balance - c.previous_balance <> c.amount_involved)
        OR (c.transaction_type = ANY (s.debit_transaction_types)
            AND c.new_balance - c.previous_balance <> -c.amount_involved))
 ORDER BY 1
"""


# The early sweep's signal (R__monitoring_03_balance_signal.sql) reads PostgreSQL's statistics,
# which a backend flushes when it pleases (at most once a second): these tests are about the
# claim, so their job sessions keep it out with track_counts off (the signal then never fires).
# test_time_to_detect.py proves the claim stays in step when it does fire.
NO_SIGNAL = "SET track_counts = off"


async def claim_states(conn: asyncpg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT detector_name, last_log_id, safe_log_id, pending_gaps::text, last_snapshot"
        " FROM monitoring_detector_watermarks WHERE detector_name = ANY ($1::text[])",
        list(LOG_RULES),
    )
    return {r["detector_name"]: tuple(r)[1:] for r in rows}


async def test_the_critical_job_claims_the_new_log_rows_once(conn: asyncpg.Connection) -> None:
    await conn.execute(NO_SIGNAL)
    await put_card(conn, "C1", "45.00")
    await log_row(conn, "C1", kind="stripe_recharge", amount="50.00", previous="0", new="50.00")
    await log_row(conn, "C1", amount="5.00", previous="50.00", new="45.00")
    for _ in range(3):
        result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        assert result["success"] is True, result
        await log_row(conn, "C1", status="failed", amount="5.00", previous="45.00", new="45.00")

    states = await claim_states(conn)
    assert set(states) == set(LOG_RULES)
    # one claim per job: every watermark holds the same rows, gaps and claim snapshot (a claim
    # of its own would take a snapshot after the job's first write, with another xmax)
    assert len(set(states.values())) == 1, states
    assert all(r["rows_examined"] == 1 for r in (result["rules"][x] for x in LOG_RULES))


async def test_every_log_rule_after_the_first_takes_the_jobs_claim(
    conn: asyncpg.Connection,
) -> None:
    # Equal watermarks do not show that the later rules took the first one's claim: with no
    # payment between them, a claim of their own ends in the same state. Count the claims
    # taken over instead. The spike rule, between them in the job, claims its own (ten times
    # larger) batches: its claim must not hide the first one from the rules after it.
    await conn.execute(NO_SIGNAL)
    await put_card(conn, "C1", "45.00")
    await log_row(conn, "C1", amount="5.00", previous="50.00", new="45.00")
    await conn.fetchval("SELECT run_critical_detection()")
    await log_row(conn, "C1", amount="5.00", previous="45.00", new="40.00")

    async with conn.transaction():
        await conn.execute("SET LOCAL track_functions = 'pl'")
        result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        taken_over = await conn.fetchval(
            "SELECT pg_stat_get_xact_function_calls('monitoring_claim_reuse'::regproc)"
        )

    assert result["success"] is True, result
    assert all(result["rules"][rule]["rows_examined"] == 1 for rule in LOG_RULES), result
    assert taken_over == len(LOG_RULES) - 1


async def test_a_rule_on_its_own_still_claims_for_itself(conn: asyncpg.Connection) -> None:
    await conn.execute(NO_SIGNAL)
    await put_card(conn, "C1", "45.00")
    await log_row(conn, "C1", amount="5.00", previous="50.00", new="45.00")
    await conn.fetchval("SELECT run_critical_detection()")
    await log_row(conn, "C1", amount="5.00", previous="45.00", new="40.00")

    own = json.loads(await conn.fetchval("SELECT monitoring_rule_balance_chain_break()"))
    assert own["rows_examined"] == 1
    # the others did not move, and the next job claims each rule's own rows: one for all
    result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert result["rules"]["balance_chain_break"]["rows_examined"] == 0
    assert result["rules"]["balance_deduction_on_failure"]["rows_examined"] == 1
    states = await claim_states(conn)
    assert len({s[:3] for s in states.values()}) == 1, states


async def test_a_row_committed_after_the_jobs_claim_between_two_new_rows_is_their_link(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    await put_card(conn, "C1", "40.00")
    first = await log_row(
        conn, "C1", kind="stripe_recharge", amount="50.00", previous="0", new="50.00"
    )
    writer = await asyncpg.connect(db_dsn)
    try:
        await writer.execute("BEGIN")
        middle = await log_row(writer, "C1", amount="5.00", previous="50.00", new="45.00")
        last = await log_row(conn, "C1", amount="5.00", previous="45.00", new="40.00")
        assert first < middle < last

        await conn.execute("BEGIN")
        # the job's first rule claims: `middle` is not visible yet, a gap between two new rows
        deduction = json.loads(
            await conn.fetchval("SELECT monitoring_run_rule('balance_deduction_on_failure')")
        )
        assert deduction["rows_examined"] == 2
        await writer.execute("COMMIT")
        # the chain-break rule takes that claim; `middle` is visible to its statement now
        chain = json.loads(await conn.fetchval("SELECT monitoring_run_rule('balance_chain_break')"))
        await conn.execute("COMMIT")
    finally:
        await writer.close()
    assert chain["rows_examined"] == 2
    later = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert later["rules"]["balance_chain_break"]["late_rows"] == 1

    breaks = await conn.fetchval(
        "SELECT count(*) FROM monitoring_events WHERE detection_algorithm = 'balance_chain_break'"
    )
    assert breaks == 0


class Traffic:
    """Random payments, the same on both databases (ids, request ids and times chosen here)."""

    def __init__(self, seed: int, base: datetime) -> None:
        self.rng = random.Random(seed)
        self.base = base
        self.cards = [f"K{i}" for i in range(8)]
        self.balance = {card: Decimal("0.00") for card in self.cards}
        self.clock = timedelta(0)

    def rows(self, count: int, cards: list[str]) -> list[dict[str, Any]]:
        """`count` random rows on `cards`, as log_row's arguments."""
        rng = self.rng
        rows = []
        for _ in range(count):
            card = rng.choice(cards)
            self.clock += timedelta(milliseconds=rng.choice([300, 900, 2500, 40]))
            at = (
                self.base
                + self.clock
                - (timedelta(minutes=2) if rng.random() < 0.05 else timedelta(0))
            )
            credit = rng.random() < 0.3
            amount = Decimal(rng.choice(["2.50", "5.00", "7.25"]))
            before = self.balance[card]
            previous: Decimal | None = before
            new: Decimal | None = before + amount if credit else before - amount
            status = "failed" if rng.random() < 0.15 else "completed"
            edge = None
            if status == "failed":
                new = before - amount if rng.random() < 0.2 else before
            if rng.random() < 0.05:
                previous = before + Decimal("1.00")  # a break in the chain
            if rng.random() < 0.05:
                edge, previous, new = "bar-order-trigger", None, None  # the mirror row
            elif status == "completed" and rng.random() < 0.05:
                previous, new = None, None
            if status == "completed" and new is not None:
                self.balance[card] = new
            rows.append(
                {
                    "card": card,
                    "transaction_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "kind": "stripe_recharge" if credit else "bar_order",
                    "status": status,
                    "amount": str(amount),
                    "previous": None if previous is None else str(previous),
                    "new": None if new is None else str(new),
                    "at": at,
                    "request": f"r{rng.randrange(6)}" if rng.random() < 0.2 else None,
                    "edge_function": edge,
                }
            )
        return rows


async def _write(
    conns: list[asyncpg.Connection],
    traffic: Traffic,
    count: int,
    cards: list[str],
    balances: bool = True,
) -> None:
    """`count` random rows on `cards` in each database, then (`balances`) those cards'
    table_cards balances, as the payments would have left them (now and then off by 0.50)."""
    for row in traffic.rows(count, cards):
        for c in conns:
            await log_row(c, **row)
    for card in cards if balances else ():
        skew = Decimal("0.50") if traffic.rng.random() < 0.05 else Decimal(0)
        for c in conns:
            await put_card(c, card, str(traffic.balance[card] + skew))


async def _events(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(EVENTS)]


async def test_the_job_finds_what_each_rule_on_its_own_finds(
    two_databases: tuple[str, str],
) -> None:
    job_dsn, own_dsn = two_databases
    job, own = await asyncpg.connect(job_dsn), await asyncpg.connect(own_dsn)
    late: list[asyncpg.Connection] = []
    try:
        await job.execute(NO_SIGNAL)
        for c in (job, own):
            await c.execute("UPDATE monitoring_settings SET detection_batch_size = 7 WHERE id = 1")
        base = await job.fetchval("SELECT date_trunc('second', now()) - interval '20 minutes'")
        traffic = Traffic(19, base)
        for step in range(12):
            await _write([job, own], traffic, 9, traffic.cards)
            if step % 3 == 1:
                # payments in progress while the rules run (gaps, then late rows). A payment
                # holds its card's row lock, so no later row of that card commits before it:
                # the late rows are on the last card, which the rows after them do not use.
                late = [await asyncpg.connect(dsn) for dsn in (job_dsn, own_dsn)]
                for c in late:
                    await c.execute("BEGIN")
                await _write(late, traffic, 2, traffic.cards[-1:], balances=False)
                await _write([job, own], traffic, 3, traffic.cards[:-1])

            result = json.loads(await job.fetchval("SELECT run_critical_detection()"))
            assert result["success"] is True, result
            examined = {rule: result["rules"][rule]["rows_examined"] for rule in CRITICAL_ORDER}
            alone = {}
            for rule in CRITICAL_ORDER:  # each in a transaction of its own: no claim to reuse
                run = json.loads(
                    await own.fetchval(
                        "SELECT monitoring_run_rule($1, $2, 1)",
                        rule,
                        "incremental" if rule in INCREMENTAL_MODE else None,
                    )
                )
                assert run["success"] is True, run
                alone[rule] = run["rows_examined"]
            assert examined == alone, step
            if step % 4 == 3:
                for c in (job, own):
                    assert json.loads(await c.fetchval("SELECT run_medium_detection()"))["success"]
            for c in late:
                await c.execute("COMMIT")
                await c.close()
            late = []
            assert await _events(job) == await _events(own), step
            states = await claim_states(job)
            assert len(set(states.values())) == 1, (step, states)

        while True:  # the rows the one-batch runs left behind, and the last late rows
            result = json.loads(await job.fetchval("SELECT run_critical_detection_batches(60000)"))
            if not result["backlog"]:
                break
        expected = [r["fingerprint"] for r in await job.fetch(BRUTE_FORCE_CHAIN_BREAKS)]
        found = await job.fetch(
            "SELECT fingerprint FROM monitoring_events"
            " WHERE detection_algorithm = 'balance_chain_break' ORDER BY fingerprint"
        )
        assert expected  # the traffic has breaks to find
        assert [r["fingerprint"] for r in found] == expected
    finally:
        for c in [job, own, *late]:
            await c.close()
