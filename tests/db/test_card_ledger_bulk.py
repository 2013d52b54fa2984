"""The card ledger's first build goes by set-based slices when far behind (issue 19.3).

Far behind the newest log row (more than catch_up_bulk_rows ids), a fold reads the next
catch_up_slice_rows ids as one range instead of claiming a batch of ids; near the head the
batches take over. The result must be exactly the ledger a brute-force pass over the log gives,
with ids that were never committed (rolled back) skipped and a row that commits after its slice
was read folded exactly once; and the balance sweep after such a build finds exactly the cards
that are wrong.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import asyncpg

from tests.db.payment_rows import put_card

TYPES = ["stripe_recharge", "standard_recharge", "bar_order", "refund", "other"]
STATUSES = ["completed", "completed", "completed", "failed", "pending"]
EDGE = [None, None, "process-bar-order", "bar-order-trigger"]


def _random_rows(rng: random.Random, count: int, cards: int) -> list[tuple[Any, ...]]:
    rows = []
    for _ in range(count):
        amount = None if rng.random() < 0.05 else Decimal(rng.randint(1, 5000)) / 100
        new = None if rng.random() < 0.1 else Decimal(rng.randint(-500, 50000)) / 100
        rows.append(
            (
                f"card-{rng.randint(1, cards):04d}",
                rng.choice(TYPES),
                rng.choice(STATUSES),
                amount,
                new,
                rng.choice(EDGE),
            )
        )
    return rows


INSERT = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 new_balance, edge_function_name, "timestamp")
VALUES ($1, $2, $3, $4, $5, $6, now() - random() * interval '3 days')
"""


async def _brute_force(conn: asyncpg.Connection) -> dict[str, tuple[Any, ...]]:
    """The ledger as a direct reading of every committed log row gives it."""
    settings = await conn.fetchrow(
        "SELECT credit_transaction_types, debit_transaction_types, mirror_edge_function_names"
        " FROM monitoring_settings"
    )
    credit = set(settings["credit_transaction_types"])
    debit = set(settings["debit_transaction_types"])
    mirror = set(settings["mirror_edge_function_names"])
    ledger: dict[str, dict[str, Any]] = {}
    rows = await conn.fetch("SELECT * FROM app_transaction_log ORDER BY log_id")
    for r in rows:
        if r["status"] != "completed" or (r["edge_function_name"] or "") in mirror:
            continue
        card = ledger.setdefault(
            r["card_id"],
            {"rows": 0, "last": None, "sum": Decimal(0), "indeterminate": 0, "at": None},
        )
        card["rows"] += 1
        if r["new_balance"] is not None:
            card["last"] = r  # ordered by log_id: the highest wins
        if r["amount_involved"] is not None and r["transaction_type"] in credit:
            card["sum"] += r["amount_involved"]
        elif r["amount_involved"] is not None and r["transaction_type"] in debit:
            card["sum"] -= r["amount_involved"]
        if r["amount_involved"] is None or r["transaction_type"] not in credit | debit:
            card["indeterminate"] += 1
        card["at"] = r["timestamp"] if card["at"] is None else max(card["at"], r["timestamp"])
    return {
        card_id: (
            c["rows"],
            c["last"] and c["last"]["log_id"],
            c["last"] and c["last"]["new_balance"],
            c["last"] and c["last"]["transaction_id"],
            c["sum"],
            c["indeterminate"],
            c["at"],
        )
        for card_id, c in ledger.items()
    }


async def _ledger(conn: asyncpg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT card_id, completed_rows, last_balance_log_id, last_balance,"
        " last_balance_transaction_id, signed_sum, indeterminate_rows, last_transaction"
        " FROM monitoring_card_ledger"
    )
    return {r["card_id"]: tuple(r.values())[1:] for r in rows}


async def _fold(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM monitoring_fold_card_ledger()")


async def _watermark(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT * FROM monitoring_detector_watermarks WHERE detector_name = 'card_ledger'"
    )


async def _gaps(conn: asyncpg.Connection) -> str:
    return await conn.fetchval(
        "SELECT pending_gaps::text FROM monitoring_detector_watermarks"
        " WHERE detector_name = 'card_ledger'"
    )


async def _first_fold_with_a_late_commit(
    conn: asyncpg.Connection, db_dsn: str, rng: random.Random
) -> tuple[int, int, asyncpg.Record, asyncpg.Record]:
    """300 rows, 25 ids of a transaction that rolls back (never visible: gaps for ever), a row
    of card-0007 whose transaction is still open while the first fold reads past its id
    (committed after it), 1 500 more rows. Returns the id before the first row, the late
    row's id, the first fold's result and the watermark right after it."""
    await conn.executemany(INSERT, _random_rows(rng, 300, 60))
    base = await conn.fetchval("SELECT min(log_id) - 1 FROM app_transaction_log")
    rolled_back = conn.transaction()
    await rolled_back.start()
    await conn.executemany(INSERT, _random_rows(rng, 25, 60))
    await rolled_back.rollback()
    late = await asyncpg.connect(db_dsn)
    try:
        late_tx = late.transaction()
        await late_tx.start()
        late_id = await late.fetchval(
            INSERT + " RETURNING log_id",
            "card-0007",
            "stripe_recharge",
            "completed",
            Decimal("12.34"),
            Decimal("99.99"),
            None,
        )
        await conn.executemany(INSERT, _random_rows(rng, 1500, 60))
        first = await _fold(conn)
        wm = await _watermark(conn)
        await late_tx.commit()
    finally:
        await late.close()
    return base, late_id, first, wm


async def _ledger_writes(conn: asyncpg.Connection) -> asyncpg.Record:
    """The ledger's row inserts, updates and HOT updates so far (statistics flushed first)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    return await conn.fetchrow(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
        " WHERE relname = 'monitoring_card_ledger'"
    )


async def test_a_bulk_build_equals_the_brute_force_ledger_with_gaps_and_a_late_commit(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    rng = random.Random(1903)
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 700,"
        " catch_up_range_rows = 700,"
        " ledger_batch_size = 40, late_commit_grace = '0'"
    )
    base, late_id, first, wm = await _first_fold_with_a_late_commit(conn, db_dsn, rng)

    assert late_id == base + 326
    assert (first["rebuilt"], first["backlog"], first["touched_cards"]) == (True, True, [])
    assert wm["last_log_id"] == base + 700  # one slice of ids, set-based (not a batch of 40)
    assert first["rows_folded"] == 700 - 25 - 1  # neither the rolled back nor the open ids
    assert await _gaps(conn) == f"{{[{base + 301},{base + 327})}}"

    # Fold until caught up, then once more: the batches near the head read the late row.
    for _ in range(200):
        result = await _fold(conn)
        if not result["backlog"]:
            break
    await _fold(conn)

    wm = await _watermark(conn)
    assert wm["caught_up_at"] is not None
    ledger = await _ledger(conn)
    assert ledger == await _brute_force(conn)
    assert ledger["card-0007"][1] >= late_id  # the late row is in, once (the brute force says)


async def test_a_bulk_slice_without_invisible_ids_records_no_gap(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 10, catch_up_slice_rows = 1000,"
        " catch_up_range_rows = 1000"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(7), 200, 20))

    built = await _fold(conn)
    wm = await _watermark(conn)

    assert (built["rows_folded"], built["backlog"]) == (200, False)
    assert await _gaps(conn) == "{}"
    assert wm["caught_up_at"] is not None
    assert await _ledger(conn) == await _brute_force(conn)


async def test_under_a_statement_timeout_one_call_folds_slices_up_to_the_batches(
    conn: asyncpg.Connection,
) -> None:
    """A job sets statement_timeout: a call folds slice after slice while time is left (here
    plenty), stopping where the batches take over; without one, one slice a call."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 300, catch_up_slice_rows = 150,"
        " catch_up_range_rows = 150,"
        " ledger_batch_size = 40"
    )
    rng = random.Random(193)
    await conn.executemany(INSERT, _random_rows(rng, 400, 50))
    rolled_back = conn.transaction()
    await rolled_back.start()
    await conn.executemany(INSERT, _random_rows(rng, 30, 50))
    await rolled_back.rollback()
    await conn.executemany(INSERT, _random_rows(rng, 570, 50))
    base = await conn.fetchval("SELECT min(log_id) - 1 FROM app_transaction_log")

    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = 0")
        alone = await _fold(conn)
        one_slice = (await _watermark(conn))["last_log_id"]
        await conn.execute("SET LOCAL statement_timeout = '10min'")
        timed = await _fold(conn)
        wm = await _watermark(conn)

    assert (alone["rows_folded"], one_slice) == (150, base + 150)
    # Slices to 300, 450, 600, 750: then 250 ids behind the head (1000 rows + 30 ids) <= 300.
    assert wm["last_log_id"] == base + 750
    assert (timed["rows_folded"], timed["backlog"]) == (600 - 30, True)
    assert wm["caught_up_at"] is None
    assert await _gaps(conn) == f"{{[{base + 401},{base + 431})}}"

    for _ in range(50):  # the batches (40 rows) fold the rest
        if not (await _fold(conn))["backlog"]:
            break
    assert await _ledger(conn) == await _brute_force(conn)


async def test_a_call_past_half_its_statement_timeout_folds_no_slice(
    conn: asyncpg.Connection,
) -> None:
    """A job that waited (for the other job's fold) until half its timeout had passed leaves
    the slice to its next run instead of running over its timeout."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 10, catch_up_slice_rows = 50,"
        " catch_up_range_rows = 50"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(31), 200, 20))
    await _fold(conn)  # the build starts: one slice

    async with conn.transaction():
        # The transaction is made 300 ms old; 500 ms of timeout: past its half.
        await conn.execute("SELECT pg_sleep(0.3)")
        await conn.execute("SET LOCAL statement_timeout = 500")
        late = await _fold(conn)
        wm = await _watermark(conn)

    base = await conn.fetchval("SELECT min(log_id) - 1 FROM app_transaction_log")
    assert (late["rows_folded"], late["backlog"], late["touched_cards"]) == (0, True, [])
    assert wm["last_log_id"] == base + 50


async def test_the_sweep_after_a_bulk_build_finds_exactly_the_wrong_cards(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 50, catch_up_slice_rows = 120,"
        " catch_up_range_rows = 120,"
        " ledger_batch_size = 30"
    )
    # 40 cards with consistent chains: a top-up, then bar orders.
    rows = []
    for c in range(1, 41):
        balance = Decimal("100.00")
        rows.append((f"card-{c:04d}", "stripe_recharge", "completed", balance, balance, None))
        for k in range(1, 6):
            price = Decimal(c + k) / 10
            balance -= price
            rows.append((f"card-{c:04d}", "bar_order", "completed", price, balance, None))
        await put_card(conn, f"card-{c:04d}", str(balance))
    await conn.executemany(INSERT, rows)
    # Changed behind the log's back: no log row says so.
    await conn.execute("UPDATE table_cards SET amount = amount + 1.00 WHERE id = 'card-0013'")

    sweeps = []
    for _ in range(20):
        sweep = json.loads(
            await conn.fetchval("SELECT monitoring_run_rule('balance_mismatch_detection', 'sweep')")
        )
        sweeps.append(sweep)
        if "skipped" not in sweep:
            break

    assert sweeps[0]["skipped"] == "card ledger is still being built from the log"
    assert sweeps[0]["rows_examined"] == 120  # a set-based slice, not a batch of 30
    assert sweeps[-1]["cards_checked"] == 40
    found = await conn.fetch(
        "SELECT card_id FROM monitoring_events"
        " WHERE detection_algorithm = 'balance_mismatch_detection'"
    )
    assert [r["card_id"] for r in found] == ["card-0013"]


async def test_far_behind_the_critical_job_leaves_the_build_to_the_medium_job(
    conn: asyncpg.Connection,
) -> None:
    """The critical job's slices took up to half of each of its runs while the rules' rows
    waited (a first run at 10 M log rows): while those rules are behind and the ledger far
    behind, the medium job builds it alone, and the critical job's mismatch rule takes its
    claim and says it skipped; once the rules have caught up, the critical job folds again
    (at 1 M log rows the build would otherwise wait for the medium job's first run), and the
    build ends as before."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 150,"
        " catch_up_range_rows = 150,"
        " ledger_batch_size = 40, detection_batch_size = 60"
    )
    rng = random.Random(77)
    await conn.executemany(INSERT, _random_rows(rng, 600, 40))

    critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    rule = critical["rules"]["balance_mismatch_detection"]
    assert rule["success"] is True, rule
    assert rule["skipped"] == "card ledger is still being built from the log"
    assert critical["ledger_build_waiting"] is True  # the scheduler starts the medium job now
    # its claim is taken like every critical rule's (the rows of the lookback among the
    # first 60 ids), backlog included
    claimed = critical["rules"]["balance_deduction_on_failure"]["rows_examined"]
    assert (rule["rows_examined"], rule["backlog"]) == (claimed, True)
    assert (await _watermark(conn))["last_log_id"] is None  # not folded

    medium = json.loads(await conn.fetchval("SELECT run_medium_detection_batches(0, false)"))
    assert medium["success"] is True, medium
    base = await conn.fetchval("SELECT min(log_id) - 1 FROM app_transaction_log")
    assert (await _watermark(conn))["last_log_id"] == base + 150  # one slice

    for _ in range(2):  # two slices more: 150 ids behind the head, still far
        await conn.fetchval("SELECT run_medium_detection_batches(0, true)")
    assert (await _watermark(conn))["last_log_id"] == base + 450
    critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert critical["backlog"] is True
    assert (await _watermark(conn))["last_log_id"] == base + 450

    while critical["backlog"]:  # the rules' last rows: that run folds again
        critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
    assert "skipped" not in critical["rules"]["balance_deduction_on_failure"]
    assert (await _watermark(conn))["last_log_id"] > base + 450
    for _ in range(10):
        critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        if (await _watermark(conn))["caught_up_at"] is not None:
            break
    assert "skipped" not in critical["rules"]["balance_mismatch_detection"]
    assert critical["ledger_build_waiting"] is False
    assert await _ledger(conn) == await _brute_force(conn)


async def test_far_behind_a_critical_run_does_not_wait_for_the_medium_jobs_slices(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    """Once its rules have caught up the critical job folds again, but not by waiting for the
    medium job's slice (up to half of a job's timeout, longer than rule_lock_timeout: the
    rule failed on its lock): it leaves the build to the job that holds the lock."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 150,"
        " catch_up_range_rows = 150,"
        " rule_lock_timeout = interval '30 seconds'"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(78), 600, 40))
    medium = await asyncpg.connect(db_dsn)
    try:
        await medium.execute("BEGIN")
        await medium.execute("SELECT monitoring_xact_lock('card_ledger')")  # a slice under way
        await conn.execute("SET statement_timeout = '10s'")
        critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        await medium.execute("ROLLBACK")
    finally:
        await medium.close()
    rule = critical["rules"]["balance_mismatch_detection"]
    assert (rule["success"], rule["backlog"]) == (True, False), rule
    assert rule["skipped"] == "card ledger is still being built from the log"
    assert (await _watermark(conn))["last_log_id"] is None


# rows this transaction has read from the log so far (heap tuples: seq scans and index fetches)
FETCHED = (
    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
    " FROM pg_stat_xact_user_tables WHERE relname = 'app_transaction_log'"
)


async def _fold_counting_log_rows(conn: asyncpg.Connection) -> tuple[asyncpg.Record, int]:
    """One fold, with the planner held to the join strategies it chose at 10 M log rows (hash
    joins, no seq scan where an index serves), and the log rows it fetched."""
    async with conn.transaction():
        for setting in ("enable_nestloop", "enable_mergejoin", "enable_seqscan"):
            await conn.execute(f"SET LOCAL {setting} = off")
        before = await conn.fetchval(FETCHED)
        folded = await _fold(conn)
        return folded, await conn.fetchval(FETCHED) - before


async def test_a_slice_reads_its_own_rows_not_the_whole_log(conn: asyncpg.Connection) -> None:
    """A slice reads back each card's last balance row by its id. Without the slice's own
    range on that read, the planner chose (at 10 M log rows) to hash the whole log for every
    slice: a seq scan of 10 M rows per 500 000-id slice. The join strategies the planner took
    there are forced here; the rows the fold fetched from the log must follow the slice, not
    the table."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 100,"
        " catch_up_range_rows = 100"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(1931), 3000, 200))

    folded, fetched = await _fold_counting_log_rows(conn)

    assert (folded["rows_folded"], folded["backlog"]) == (100, True)
    # the slice's rows, read by its few passes: far from the log's 3 000
    assert fetched <= 5 * 100, fetched


async def test_a_batch_fold_reads_its_rows_once_not_the_whole_log(
    conn: asyncpg.Connection,
) -> None:
    """Near the head the fold claims batches. Its three reads of a batch by the id array
    (summary, last balances, cards) are one now, and the last balances are not read back
    from the whole log: held to the join strategies the planner chose for a 10 M slice, a
    batch's read-back read every log row too."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100000, ledger_batch_size = 1000"
    )
    rng = random.Random(1932)
    await conn.executemany(INSERT, _random_rows(rng, 3000, 200))
    while (await _fold(conn))["backlog"]:
        pass
    await conn.executemany(INSERT, _random_rows(rng, 100, 200))

    folded, fetched = await _fold_counting_log_rows(conn)

    assert (folded["rows_folded"], folded["backlog"]) == (100, False)
    new_cards = await conn.fetchval(
        "SELECT array_agg(DISTINCT card_id ORDER BY card_id) FROM app_transaction_log"
        " WHERE log_id > (SELECT max(log_id) - 100 FROM app_transaction_log)"
    )
    assert sorted(folded["touched_cards"]) == new_cards
    # the claim's read of the new ids and the batch's one read: not the log's 3 100 rows, and
    # not the three reads of the batch (300) of before
    assert fetched <= 2 * 100, fetched
    assert await _ledger(conn) == await _brute_force(conn)


async def test_a_rebuild_after_a_crash_tells_the_scheduler_to_start_the_medium_job(
    conn: asyncpg.Connection,
) -> None:
    """The unlogged ledger emptied by a crash on a large log: the critical job's fold starts the
    rebuild, then leaves it to the medium job and says so (ledger_build_waiting), so that the
    scheduler starts that job now instead of at its next interval (up to 120 s)."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 150,"
        " catch_up_range_rows = 150,"
        " ledger_batch_size = 1000"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(79), 600, 40))
    for _ in range(20):
        critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        if not critical["backlog"] and (await _watermark(conn))["caught_up_at"] is not None:
            break
    assert critical["ledger_build_waiting"] is False

    # what crash recovery does to the unlogged ledger (the logged watermark is kept)
    await conn.execute("TRUNCATE monitoring_card_ledger, monitoring_card_ledger_state")
    await conn.executemany(INSERT, _random_rows(random.Random(80), 10, 40))
    critical = json.loads(await conn.fetchval("SELECT run_critical_detection()"))

    assert critical["rules"]["balance_mismatch_detection"]["ledger_rebuilt"] is True
    assert critical["ledger_build_waiting"] is True


async def test_a_build_that_updates_every_card_in_every_slice_keeps_its_updates_hot(
    conn: asyncpg.Connection,
) -> None:
    """Each slice of a first build updates the row of every card it has rows of (the
    benchmark's 10 M log rows: every slice half the cards, ten updates per card). With room on
    the ledger's pages (fillfactor 40, V0070) every such update is HOT: the new version on the
    same page, no index entry written; at 70 a third of them were not (benchmarks/RESULTS.md)."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 400,"
        " catch_up_range_rows = 400"
    )
    # every 400-id slice has one completed row of each of 400 cards
    rows = [
        (f"card-{card:04d}", "bar_order", "completed", Decimal("1.00"), Decimal(slice_), None)
        for slice_ in range(8)
        for card in range(400)
    ]
    await conn.executemany(INSERT, rows)
    while (await _fold(conn))["backlog"]:
        pass
    updates = await _ledger_writes(conn)
    assert updates["n_tup_upd"] >= 7 * 400, updates  # the slices after the first update
    assert updates["n_tup_hot_upd"] == updates["n_tup_upd"], updates


async def _progress(conn: asyncpg.Connection) -> dict[str, Any]:
    progress = json.loads(await conn.fetchval("SELECT monitoring_catch_up_progress()"))
    return next(p for p in progress if p["detector"] == "card_ledger")


async def test_a_build_by_card_partitions_writes_each_card_once_and_equals_the_brute_force(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    """A range of the log (catch_up_range_rows ids) is folded in one statement per
    catch_up_slice_rows ids, each the range's rows of one hash partition of the cards (V0080):
    each card is written once, where slices of ids wrote it once per slice. The range's first
    statement records the ids it cannot see; the other partitions leave them out even once
    committed, and the batches near the head fold them later, once."""
    rng = random.Random(1980)
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 300,"
        " catch_up_range_rows = 5000, ledger_batch_size = 40, late_commit_grace = '0'"
    )
    # the late row: open while the range's first partition is read, committed before the second
    base, late_id, first, wm = await _first_fold_with_a_late_commit(conn, db_dsn, rng)

    head = base + 1826
    assert late_id == base + 326
    assert (first["rebuilt"], first["backlog"], first["touched_cards"]) == (True, True, [])
    # the whole backlog is one range in ceil(1826 / 300) = 7 partitions; the watermark waits
    # for the range's last one, the progress counts the first
    assert wm["last_log_id"] == base
    assert 0 < first["rows_folded"] < 1800
    assert (await _progress(conn))["rows_behind"] == head - base - 1826 * 1 // 7
    # a range begun is finished by partitions even where the batches would take over now
    await conn.execute("UPDATE monitoring_settings SET catch_up_bulk_rows = 100000")
    for _ in range(5):
        await _fold(conn)
    assert (await _watermark(conn))["last_log_id"] == base
    last = await _fold(conn)  # the seventh

    wm = await _watermark(conn)
    assert wm["last_log_id"] == head
    assert await _gaps(conn) == f"{{[{base + 301},{base + 327})}}"
    assert (await _progress(conn))["rows_behind"] == 0
    assert last["backlog"] is False and wm["caught_up_at"] is not None
    cards = await conn.fetchval("SELECT count(*) FROM monitoring_card_ledger")
    writes = await _ledger_writes(conn)
    assert (writes["n_tup_ins"], writes["n_tup_upd"]) == (cards, 0)  # each card once: no update
    # without the late row (a gap until the batches read it), though it is committed
    assert (await _ledger(conn))["card-0007"][0] == (await _brute_force(conn))["card-0007"][0] - 1

    await conn.executemany(INSERT, _random_rows(rng, 10, 60))
    await _fold(conn)  # a batch: the new rows and the late row, once
    ledger = await _ledger(conn)
    assert ledger == await _brute_force(conn)
    assert ledger["card-0007"][1] >= late_id


async def test_a_slice_near_the_timeout_splits_the_partitions_left_in_two(
    conn: asyncpg.Connection,
) -> None:
    """A slice that took more than half the job's statement timeout (a slower server
    than catch_up_slice_rows was chosen for) makes the partitions left half as large, before
    one runs over the timeout and is tried again for ever; the ledger is the same."""
    await conn.execute(
        "UPDATE monitoring_settings SET catch_up_bulk_rows = 100, catch_up_slice_rows = 300,"
        " catch_up_range_rows = 5000"
    )
    await conn.executemany(INSERT, _random_rows(random.Random(1981), 1800, 60))
    await _fold(conn)  # no statement timeout: one slice, 1 of 6 partitions
    # that slice as a slow server would have taken it: 400 s of the 10 min timeout below
    await conn.execute(
        "UPDATE monitoring_card_ledger_state"
        " SET build_range = build_range || '{\"slice_ms\": 400000}'"
    )

    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = '10min'")
        built = await _fold(conn)  # the 5 partitions left as 10, all in this call

    state = json.loads(await conn.fetchval("SELECT build_range FROM monitoring_card_ledger_state"))
    assert state["parts"] == 12 and "todo" not in state
    assert built["backlog"] is False
    assert (await _watermark(conn))["caught_up_at"] is not None
    cards = await conn.fetchval("SELECT count(*) FROM monitoring_card_ledger")
    writes = await _ledger_writes(conn)
    assert (writes["n_tup_ins"], writes["n_tup_upd"]) == (cards, 0)
    assert await _ledger(conn) == await _brute_force(conn)
