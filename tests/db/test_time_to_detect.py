"""Time to detect (issue 19.5): the critical job alone finds a failure spike and a balance
changed without a log row, at a cost per run that follows its new rows.

The spike rule runs in the critical job; per-bucket counts of the rows it claimed prove most
windows no spike before anything in the log is counted (brute-force equivalence below). A
direct `UPDATE table_cards` is announced by PostgreSQL's own statistics (table_cards updates
against log inserts and the claimed rows that changed no card): the critical run after the
statistics show it sweeps, and the sweep finds the card. Payments go through the reference
payment procedures on other connections, closed before each check so that their statistics
are flushed (a backend flushes at exit; otherwise within about a second).
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.test_critical_row_pass import claim_states
from tests.db.test_spike_pruning import BRUTE_FORCE

# The windows ending at the rows from log id $1 on (one run's new rows), counted in full.
BRUTE_FORCE_NEW = BRUTE_FORCE.replace(
    'SELECT DISTINCT "timestamp" AS ts FROM app_transaction_log',
    'SELECT DISTINCT "timestamp" AS ts FROM app_transaction_log WHERE log_id >= $1',
)
assert "log_id >= $1" in BRUTE_FORCE_NEW

BAR_ORDER = "SELECT sp_process_bar_order($1, $2::jsonb, $3, $4, $5)"
RECHARGE = "SELECT sp_process_recharge($1, $2, $3, $4)"
# the rules that judge balances and failures: a steady workload raises none of them
MONEY_RULES = (
    "balance_mismatch_detection",
    "negative_balance_detection",
    "balance_chain_break",
    "balance_deduction_on_failure",
    "consecutive_failures",
    "system_failure_spike",
)

STATS = """
SELECT pg_stat_get_tuples_updated('table_cards'::regclass),
       pg_stat_get_tuples_inserted('app_transaction_log'::regclass)
"""


async def _critical(conn: asyncpg.Connection) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert result["success"] is True, result
    return result


async def _events(conn: asyncpg.Connection, algorithm: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT card_id, event_data FROM monitoring_events"
        " WHERE detection_algorithm = $1 ORDER BY card_id",
        algorithm,
    )


async def _flushed(conn: asyncpg.Connection, updated: int, inserted: int) -> None:
    """Wait until the statistics count at least these table_cards updates and log inserts."""
    async with asyncio.timeout(20):
        while True:
            row = await conn.fetchrow(STATS)
            if row[0] >= updated and row[1] >= inserted:
                return
            await asyncio.sleep(0.05)


class Till:
    """Payments through the reference procedures on a connection of its own (closed after
    each batch, so that its statistics are flushed)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.requests = 0
        self.updates = 0
        self.inserts = 0

    async def pay(self, orders: list[tuple[str, str, str]]) -> None:
        """(kind, card, amount): 'recharge' or 'order'; an order above the balance is refused."""
        conn = await asyncpg.connect(self.dsn)
        try:
            for kind, card, amount in orders:
                self.requests += 1
                request = f"req-{self.requests}"
                if kind == "recharge":
                    result = json.loads(
                        await conn.fetchval(
                            RECHARGE, card, Decimal(amount), "checkpoint_recharge", request
                        )
                    )
                else:
                    items = json.dumps([{"name": "beer", "unit_price": amount, "quantity": 1}])
                    result = json.loads(
                        await conn.fetchval(BAR_ORDER, card, items, Decimal(amount), request, 1)
                    )
                assert result["success"] or result["error_code"] == "INSUFFICIENT_FUNDS", result
                self.inserts += 1
                self.updates += 1 if result["success"] else 0
        finally:
            await conn.close()

    async def settle(self, conn: asyncpg.Connection, base: tuple[int, int]) -> None:
        await _flushed(conn, base[0] + self.updates, base[1] + self.inserts)


async def _festival(db_dsn: str, conn: asyncpg.Connection) -> tuple[Till, tuple[int, int]]:
    await conn.executemany(
        "INSERT INTO table_cards (id, amount) VALUES ($1, 0)", [(f"C{i}",) for i in range(10)]
    )
    base = tuple(await conn.fetchrow(STATS))
    till = Till(db_dsn)
    # C0-C7 pay (_steady); C8 and C9 only get their first recharge: a later payment would
    # carry an edited balance on as its own (then the chain-break rule sees the edit)
    await till.pay([("recharge", f"C{i}", "20.00") for i in range(10)])
    await till.settle(conn, (base[0], base[1]))
    return till, (base[0], base[1])


def _steady(
    till: Till, rng: random.Random, n: int, *, refused: bool = True
) -> list[tuple[str, str, str]]:
    # accepted orders, a recharge every fourth order (the cards never run dry), and, unless
    # `refused` is false, one order in 25 refused (above the balance: a failure rate below
    # the spike threshold, never twice in a row on a card)
    orders = []
    for k in range(n):
        card = f"C{rng.randrange(8)}"
        if refused and (till.requests + k) % 25 == 0:  # each card in turn
            orders.append(("order", f"C{(till.requests + k) // 25 % 8}", "500.00"))
        elif k % 4 == 0:
            orders.append(("recharge", card, "10.00"))
        else:
            orders.append(("order", card, "1.50"))
    return orders


async def test_a_spike_is_found_by_the_critical_job_alone(conn: asyncpg.Connection) -> None:
    now: datetime = await conn.fetchval("SELECT now()")
    steady = [("completed", now - timedelta(seconds=s)) for s in range(5, 600, 2)]
    await _insert_rows(conn, steady)
    first = await _critical(conn)
    assert "system_failure_spike" in first["rules"]
    assert await _events(conn, "system_failure_spike") == []

    burst = [("failed", now - timedelta(milliseconds=10 * k)) for k in range(40)]
    await _insert_rows(conn, burst)
    await _critical(conn)

    (event,) = await _events(conn, "system_failure_spike")
    data = json.loads(event["event_data"])
    assert data["failed_transactions"] == 40


def _three_percent(start: datetime, n: int) -> list[tuple[str, datetime]]:
    """One row a second from `start`, one in 33 failed."""
    return [
        ("failed" if k % 33 == 0 else "completed", start + k * timedelta(seconds=1))
        for k in range(n)
    ]


async def test_steady_failures_are_judged_from_the_buckets_not_the_log(
    conn: asyncpg.Connection,
) -> None:
    # 3 % of rows failed, steadily, over the whole window: every new row has failed rows in
    # its window. The buckets prove each window below the 5 % threshold without a count.
    now: datetime = await conn.fetchval("SELECT now()")
    await conn.execute("UPDATE monitoring_settings SET failure_spike_window = '5 minutes'")
    await _insert_rows(conn, _three_percent(now - timedelta(seconds=600), 540))
    # the first run claims the history (its first windows are short: a spike or two)
    await _spike_run(conn)
    await conn.execute("DELETE FROM monitoring_events")
    await _insert_rows(conn, _three_percent(now - timedelta(seconds=60), 55))

    result = await _spike_run(conn)

    assert result["rows_examined"] == 55
    assert result["windows_proven_by_buckets"] == 55
    assert await _events(conn, "system_failure_spike") == []


async def test_the_buckets_give_the_brute_force_result_run_after_run(
    conn: asyncpg.Connection,
) -> None:
    # Traffic arriving in 12 runs: quiet and busy stretches, failure rates below, near and
    # above the threshold, two bursts. Each run judges the windows ending at its new rows:
    # its worst window and the number of spike windows are the brute-force count's.
    rng = random.Random(19)
    await conn.execute(
        "UPDATE monitoring_settings SET failure_spike_window = '1 minute',"
        " failure_spike_rate_percent = 5, failure_spike_min_transactions = 10"
    )
    start: datetime = await conn.fetchval("SELECT now() - interval '20 minutes'")
    proven = spikes = 0
    second = 0
    for run in range(12):
        rows: list[tuple[str, datetime]] = []
        for _ in range(90):
            second += 1
            busy = run % 3 != 0
            failure_rate = (0.02, 0.045, 0.08)[run % 4 % 3]
            for _ in range(rng.randint(1, 4) if busy else int(rng.random() < 0.3)):
                status = "failed" if rng.random() < failure_rate else "completed"
                at = start + timedelta(seconds=second, milliseconds=rng.randrange(1000))
                rows.append((status, at))
        if run in (4, 9):  # a burst
            rows += [("failed", start + timedelta(seconds=second - 5))] * 8
        spike, by_buckets = await _judged_like_the_brute_force(conn, rows, run)
        spikes += spike
        proven += by_buckets
    assert spikes > 0, "some runs had spikes"
    assert proven > 0, "the buckets proved some windows"


async def test_brute_force_on_one_run_matches_with_the_buckets_warm(
    conn: asyncpg.Connection,
) -> None:
    # steady 3 % failures for twenty minutes, then a run with a short burst in it
    rng = random.Random(5)
    await conn.execute("UPDATE monitoring_settings SET failure_spike_window = '1 minute'")
    start: datetime = await conn.fetchval("SELECT now() - interval '30 minutes'")
    for part in range(4):
        early = [
            (
                "failed" if rng.random() < 0.03 else "completed",
                start + timedelta(seconds=300 * part + s / 3),
            )
            for s in range(900)
        ]
        await _judged_like_the_brute_force(conn, early, part)
    late = [
        ("failed" if rng.random() < 0.03 else "completed", start + timedelta(seconds=1200 + s / 3))
        for s in range(600)
    ] + [("failed", start + timedelta(seconds=1300))] * 6

    spike, by_buckets = await _judged_like_the_brute_force(conn, late, 4)
    assert spike == 1
    assert by_buckets > 0


async def _judged_like_the_brute_force(
    conn: asyncpg.Connection, rows: list[tuple[str, datetime]], run: int
) -> tuple[int, int]:
    """Insert rows, run the rule once, compare with the full count of the windows ending at
    the new rows: (1 if there was a spike, windows the buckets proved no spike)."""
    first_new = await conn.fetchval("SELECT coalesce(max(log_id), 0) + 1 FROM app_transaction_log")
    await conn.execute("DELETE FROM monitoring_events")
    await _insert_rows(conn, rows)
    result = await _spike_run(conn)
    expected = await conn.fetchrow(BRUTE_FORCE_NEW, first_new)
    found = await _events(conn, "system_failure_spike")
    if expected is None:
        assert found == [], run
        return 0, result["windows_proven_by_buckets"]
    assert len(found) == 1, run
    data = json.loads(found[0]["event_data"])
    assert (
        data["spike_windows_seen"],
        data["total_transactions"],
        data["failed_transactions"],
    ) == (expected["spike_windows"], expected["total"], expected["failed"]), run
    assert datetime.fromisoformat(data["window_end"]) == expected["ts"], run
    return 1, result["windows_proven_by_buckets"]


async def _edit_balance(db_dsn: str, card: str, amount: str = "amount + 15") -> None:
    """A balance typed into the table editor: an UPDATE of table_cards, no log row."""
    editor = await asyncpg.connect(db_dsn)
    try:
        await editor.execute(f"UPDATE table_cards SET amount = {amount} WHERE id = $1", card)
    finally:
        await editor.close()


async def _mismatches(conn: asyncpg.Connection) -> list[str]:
    return [e["card_id"] for e in await _events(conn, "balance_mismatch_detection")]


async def _warm(
    db_dsn: str, conn: asyncpg.Connection, seed: int, rounds: int, size: int
) -> tuple[Till, tuple[int, int], random.Random]:
    """A festival, the first critical run (ledger, baseline), then `rounds` steady batches of
    `size` payments, each flushed and followed by a critical run."""
    till, base = await _festival(db_dsn, conn)
    await _critical(conn)
    rng = random.Random(seed)
    for _ in range(rounds):
        await till.pay(_steady(till, rng, size))
        await till.settle(conn, base)
        await _critical(conn)
    return till, base, rng


async def test_a_direct_update_is_found_by_the_critical_run_after_the_statistics_show_it(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    till, base, rng = await _warm(db_dsn, conn, seed=3, rounds=3, size=30)
    assert await _mismatches(conn) == []

    await _edit_balance(db_dsn, "C8")
    await till.pay(_steady(till, rng, 20, refused=False))  # payments go on meanwhile
    await _flushed(conn, base[0] + till.updates + 1, base[1] + till.inserts)
    result = await _critical(conn)

    assert result["rules"]["balance_mismatch_detection"]["mode"] == "sweep"
    assert await _mismatches(conn) == ["C8"]
    assert await conn.fetchval("SELECT triggers FROM monitoring_balance_signal_state") == 1
    # the sweeping rules took the job's one claim too: their watermarks stay in step with the
    # other rules' (a sweep instead of the claim left them claiming on their own from then on)
    states = await claim_states(conn)
    assert len(set(states.values())) == 1, states


async def test_a_negative_balance_typed_in_is_found_by_the_next_critical_run(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    till, base, _ = await _warm(db_dsn, conn, seed=7, rounds=1, size=30)

    await _edit_balance(db_dsn, "C9", "-5.00")
    await _flushed(conn, base[0] + till.updates + 1, base[1] + till.inserts)
    result = await _critical(conn)

    assert result["rules"]["negative_balance_detection"]["mode"] == "sweep"
    assert [e["card_id"] for e in await _events(conn, "negative_balance_detection")] == ["C9"]
    assert await _mismatches(conn) == ["C9"]


async def test_refused_payments_in_the_same_interval_delay_it_by_one_critical_run(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    # A refused payment adds a log row and changes no card: the signal counts it once the
    # spike rule has claimed it and its statistics are surely flushed (claimed by the previous
    # check, or older than a second). Refusals flushed since the previous check can hide the
    # edit for that run; the next run counts them.
    till, base, _ = await _warm(db_dsn, conn, seed=5, rounds=1, size=30)

    await _edit_balance(db_dsn, "C9")
    await till.pay([("order", "C1", "500.00"), ("order", "C3", "1.50")])  # one refused
    await _flushed(conn, base[0] + till.updates + 1, base[1] + till.inserts)
    await _critical(conn)
    await _critical(conn)

    assert await _mismatches(conn) == ["C9"]


async def test_steady_payments_raise_no_event_and_no_early_sweep(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    await _warm(db_dsn, conn, seed=11, rounds=6, size=25)

    # (the race rule sees this till's quick orders on one card: not what this test is about)
    assert (
        await conn.fetch(
            "SELECT detection_algorithm, card_id FROM monitoring_events"
            " WHERE detection_algorithm = ANY ($1)",
            list(MONEY_RULES),
        )
        == []
    )
    assert await conn.fetchval("SELECT triggers FROM monitoring_balance_signal_state") == 0
    refused = await conn.fetchval(
        "SELECT count(*) FROM app_transaction_log WHERE status = 'failed'"
    )
    assert refused > 0, "the workload had refused payments"


async def _insert_rows(conn: asyncpg.Connection, rows: list[tuple[str, datetime]]) -> None:
    await conn.executemany(
        """
        INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                         previous_balance, new_balance, "timestamp")
        VALUES ($1, 'bar_order', $2, 1.00, NULL, NULL, $3)
        """,
        [(f"P{i % 50}", status, at) for i, (status, at) in enumerate(rows)],
    )


async def _spike_run(conn: asyncpg.Connection) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        await conn.fetchval("SELECT monitoring_run_rule('system_failure_spike')")
    )
    assert result["success"] is True, result
    return result


LEDGER_LAST_ID = (
    "SELECT last_log_id FROM monitoring_detector_watermarks WHERE detector_name = 'card_ledger'"
)


async def test_far_behind_a_ledger_build_the_signal_leaves_the_sweep_to_the_medium_job(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    """During a first build far behind (catch_up_bulk_rows, issue 19.3) a sweep compares
    nothing and only folds: in the critical job it took the fold's slices back from the
    medium job (and its lock: the medium job's runs timed out). The critical job leaves the
    sweep to the medium job until the ledger is near the head; the build, once done,
    compares every card, and the edited balance is found."""
    till, base, rng = await _warm(db_dsn, conn, seed=5, rounds=2, size=30)
    # a rebuild (the settings the ledger is folded with changed) that is far behind
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 1, catch_up_slice_rows = 2,"
        " catch_up_range_rows = 2,"
        " credit_transaction_types = credit_transaction_types || '{gift}'::text[],"
        " detection_batch_size = 5"
    )
    building = await conn.fetchval("SELECT run_medium_detection_batches(0, false)")
    assert json.loads(building)["success"] is True
    folded = await conn.fetchval(LEDGER_LAST_ID)

    await _edit_balance(db_dsn, "C8")
    await till.pay(_steady(till, rng, 20, refused=False))
    await _flushed(conn, base[0] + till.updates + 1, base[1] + till.inserts)
    result = await _critical(conn)

    assert result["backlog"] is True  # the rules are behind too: their runs do not fold
    assert result["rules"]["balance_mismatch_detection"]["mode"] == "incremental"
    assert await conn.fetchval(LEDGER_LAST_ID) == folded  # neither folded nor swept
    await conn.execute("UPDATE monitoring_settings SET catch_up_slice_rows = 1000")
    for _ in range(5):
        medium = json.loads(await conn.fetchval("SELECT run_medium_detection_batches(0, true)"))
        if not medium["backlog"]:
            break
    assert await _mismatches(conn) == ["C8"]
