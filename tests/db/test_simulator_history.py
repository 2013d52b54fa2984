"""The festival's history is generated and written a chunk at a time: bounded memory, same day."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal

import asyncpg

from festmon_tui.db.simulation import HistoryBatch, HistoryWriter, SimulationStore
from festmon_tui.simulator.config import RuleLimits, SimulationConfig
from festmon_tui.simulator.runner import HISTORY_YIELD_EVERY, Simulation

# 120 s of history at 30 payments/s: ~3 600 payments, no live traffic needed.
CONFIG = SimulationConfig(seed=5, cards=150, rate_tps=30, anomalies_per_min=0, history_s=120)
CHUNK = 400

# What the history wrote, without the timestamps (they follow each run's clock) and the ids
# drawn from sequences (the same in two fresh databases, but not what is being compared).
DAY_SQL = {
    "cards": "SELECT id, amount FROM table_cards ORDER BY id",
    "orders": """
        SELECT o.card_id, o.total_amount, o.status, o.point_of_sale, o.client_request_id,
               array_agg((i.product_name, i.price, i.quantity, i.is_deposit, i.is_return)
                         ORDER BY i.product_name, i.quantity) AS items
          FROM bar_orders AS o JOIN bar_order_items AS i ON i.order_id = o.id
         GROUP BY o.id ORDER BY o.client_request_id""",
    "recharges": """
        SELECT id_card, card_id, amount, paid_by_card, stripe_session_id, client_request_id,
               staff_id, checkpoint_id
          FROM recharges ORDER BY client_request_id""",
    "ledger": """
        SELECT l.card_id, l.transaction_type, l.status, l.amount_involved, l.previous_balance,
               l.new_balance, l.client_request_id,
               coalesce(o.client_request_id, r.client_request_id, r.stripe_session_id) AS refers_to
          FROM app_transaction_log AS l
          LEFT JOIN bar_orders AS o ON o.id = (l.details ->> 'order_id')::int
          LEFT JOIN recharges AS r ON r.id = (l.details ->> 'recharge_id')::int
         ORDER BY l.log_id""",
    "scans": """
        SELECT card_id_scanned, scan_status, client_request_id, device_identifier
          FROM nfc_scan_log ORDER BY scan_log_id""",
}


class RecordingStore(SimulationStore):
    """The real store; it notes the size of every batch of history handed to the writer."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.batches: list[int] = []
        self.cards_written_last = False

    @asynccontextmanager
    async def history(self) -> AsyncIterator[HistoryWriter]:
        store = self

        class Recording(HistoryWriter):
            async def write(self, batch: HistoryBatch, chunk: int = 20_000) -> None:
                store.batches.append(len(batch.entries))
                store.cards_written_last = False
                await super().write(batch, chunk)

            async def finish(
                self, cards: Sequence[tuple[str, Decimal, datetime]], chunk: int = 20_000
            ) -> None:
                store.cards_written_last = True
                await super().finish(cards, chunk)

        async with super().history() as writer:
            yield Recording(writer.conn)


async def _history(dsn: str, chunk: int) -> tuple[RecordingStore, Simulation, dict[str, list]]:
    async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        store = RecordingStore(pool)
        simulation = Simulation(store, CONFIG, RuleLimits(), history_chunk=chunk)
        await simulation.prepare()
        # The bulk load is written to disk in the background, so that no later shutdown
        # checkpoint has the whole new festival to write.
        assert store.checkpointed is not None
        assert await store.checkpointed is True
        day = {
            name: [tuple(r.values()) for r in await pool.fetch(sql)]
            for name, sql in DAY_SQL.items()
        }
    return store, simulation, day


async def test_the_history_is_held_a_chunk_at_a_time_and_writes_the_same_day_as_in_one_piece(
    two_databases: tuple[str, str],
) -> None:
    chunked, chunked_sim, chunked_day = await _history(two_databases[0], CHUNK)
    whole, whole_sim, whole_day = await _history(two_databases[1], 10**9)

    payments = chunked_sim.stats.history_payments
    assert payments > 5 * CHUNK
    assert max(chunked.batches) == CHUNK  # never more of the day in memory than one chunk
    assert len(chunked.batches) == -(-payments // CHUNK)
    assert chunked.cards_written_last  # cards last, with their balance at the end of the day
    assert whole.batches == [payments]

    assert chunked_sim.stats.as_json()["history"] == whole_sim.stats.as_json()["history"]
    for name in DAY_SQL:
        assert chunked_day[name] == whole_day[name], name
    assert len(chunked_day["ledger"]) == payments
    missing = [row for row in chunked_day["ledger"] if row[-1] is None]
    assert not missing, missing[:3]  # each row finds its order or recharge
    balances = dict(chunked_day["cards"])
    last: dict[str, Decimal] = {}
    for row in chunked_day["ledger"]:
        last[row[0]] = row[5]
    assert last and all(balances[card] == balance for card, balance in last.items())


async def test_building_the_history_gives_the_event_loop_a_turn_every_few_hundred_scripts(
    db_dsn: str,
) -> None:
    # The dashboard shares the loop with `festmon demo`'s history: a ticker task notes how far
    # the generation got each time it runs; one write of the whole day (no I/O in between)
    # leaves only the simulator's own yields to let it run.
    seen: list[int] = []
    async with asyncpg.create_pool(db_dsn, min_size=1, max_size=2) as pool:
        simulation = Simulation(SimulationStore(pool), CONFIG, RuleLimits(), history_chunk=10**9)

        async def ticker() -> None:
            while True:
                seen.append(simulation.history_scripts)
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        try:
            await simulation.prepare()
        finally:
            task.cancel()
    total = simulation.history_scripts
    assert total > 4 * HISTORY_YIELD_EVERY
    steps = [b - a for a, b in itertools.pairwise([*seen, total])]
    assert max(steps) <= HISTORY_YIELD_EVERY
