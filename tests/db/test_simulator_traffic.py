"""The simulator's normal traffic: realistic, consistent, and invisible to every detection rule."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from festmon_tui.db.simulation import SimulationStore
from festmon_tui.simulator.config import RuleLimits, SimulationConfig
from festmon_tui.simulator.runner import RunStats, Simulation
from tests.db.sim_support import detect_everything

# A completed row whose balances do not continue the card's previous completed row, or whose
# change disagrees with its amount and type; and cards whose balance is not their last row's.
CHAIN_BREAKS_SQL = """
WITH ledger AS (
    SELECT card_id, log_id, transaction_type, amount_involved, previous_balance, new_balance,
           lag(new_balance) OVER (PARTITION BY card_id ORDER BY log_id) AS before
      FROM app_transaction_log
     WHERE status = 'completed'
)
SELECT count(*) FROM ledger
 WHERE (before IS NOT NULL AND previous_balance <> before)
    OR new_balance - previous_balance <>
       CASE WHEN transaction_type = 'bar_order' THEN -amount_involved ELSE amount_involved END
"""

CARD_MISMATCHES_SQL = """
SELECT count(*) FROM table_cards c
  JOIN LATERAL (SELECT new_balance FROM app_transaction_log l
                 WHERE l.card_id = c.id AND l.status = 'completed'
                 ORDER BY log_id DESC LIMIT 1) last ON true
 WHERE c.amount <> last.new_balance
"""

CLOSE_SCANS_SQL = """
SELECT count(*) FROM (
    SELECT scan_timestamp - lag(scan_timestamp) OVER (
               PARTITION BY card_id_scanned ORDER BY scan_timestamp, scan_log_id) AS gap
      FROM nfc_scan_log
     WHERE card_id_scanned IS NOT NULL AND scan_status <> 'duplicate') s
 WHERE gap < interval '5 seconds'
"""

CLOSE_PAYMENTS_SQL = """
SELECT count(*) FROM (
    SELECT "timestamp" - lag("timestamp") OVER (
               PARTITION BY card_id ORDER BY "timestamp", log_id) AS gap
      FROM app_transaction_log
     WHERE status <> 'failed') s
 WHERE gap < interval '2 seconds'
"""


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(db_dsn, min_size=2, max_size=12) as created:
        yield created


async def _simulate(pool: asyncpg.Pool, config: SimulationConfig) -> RunStats:
    simulation = Simulation(SimulationStore(pool), config, RuleLimits())
    await simulation.prepare()
    stats = await simulation.run_live()
    await simulation.finish()
    return stats


async def test_thousands_of_clean_payments_raise_no_event_and_keep_every_chain(
    pool: asyncpg.Pool,
) -> None:
    config = SimulationConfig(
        seed=11, cards=400, rate_tps=400, duration_s=8, anomalies_per_min=0, history_s=60
    )

    stats = await _simulate(pool, config)
    async with pool.acquire() as conn:
        await detect_everything(conn)
        events = await conn.fetch(
            "SELECT detection_algorithm, card_id FROM monitoring_events ORDER BY event_id"
        )
        chain_breaks = await conn.fetchval(CHAIN_BREAKS_SQL)
        mismatches = await conn.fetchval(CARD_MISMATCHES_SQL)
        close_scans = await conn.fetchval(CLOSE_SCANS_SQL)
        close_payments = await conn.fetchval(CLOSE_PAYMENTS_SQL)
        failed = await conn.fetchval(
            "SELECT count(*) FROM app_transaction_log WHERE status = 'failed'"
        )
        duplicates = await conn.fetchval(
            "SELECT count(*) FROM nfc_scan_log WHERE scan_status = 'duplicate'"
        )

    assert stats.payments >= 2500, stats.as_json()
    assert stats.divergences == 0 and stats.errors == 0, stats.as_json()
    assert [e["detection_algorithm"] for e in events] == ["system_initialization"]
    assert (chain_breaks, mismatches, close_scans, close_payments) == (0, 0, 0, 0)
    # Real traffic has refused payments and debounced double taps; they must stay harmless.
    assert failed == stats.refused > 0
    assert duplicates > 0
