"""Same seed, same festival: the plan and what reaches the database do not depend on timing."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import asyncpg

from festmon_tui.db.simulation import SimulationStore
from festmon_tui.simulator.config import RuleLimits, SimulationConfig
from festmon_tui.simulator.injection import RULES
from festmon_tui.simulator.planner import Planner
from festmon_tui.simulator.runner import Simulation

KINDS = tuple(r for r in RULES if r != "consecutive_failures")  # its 3 retries take ~16 s
CONFIG = SimulationConfig(
    seed=99, cards=150, rate_tps=30, anomalies_per_min=60, duration_s=5, history_s=120, kinds=KINDS
)

LEDGER_SQL = """
SELECT card_id, transaction_type, status, amount_involved, previous_balance, new_balance
  FROM app_transaction_log
 ORDER BY card_id, log_id
"""


def _plan_digest(config: SimulationConfig) -> str:
    digest = hashlib.sha256()
    for script in Planner(config, RuleLimits()).scripts():
        digest.update(f"{script.at:.6f}|{script.label}|{script.card_id}|{script.steps}".encode())
    return digest.hexdigest()


def test_the_same_seed_plans_the_same_festival_and_another_seed_does_not() -> None:
    assert _plan_digest(CONFIG) == _plan_digest(CONFIG)
    other = SimulationConfig(**{**CONFIG.__dict__, "seed": 100})
    assert _plan_digest(other) != _plan_digest(CONFIG)


async def _run(dsn: str) -> tuple[dict[str, list[tuple[object, ...]]], list[tuple[object, ...]]]:
    async with asyncpg.create_pool(dsn, min_size=2, max_size=8) as pool:
        store = SimulationStore(pool)
        simulation = Simulation(store, CONFIG, RuleLimits())
        run = await simulation.prepare()
        await simulation.run_live()
        await simulation.finish()
        ledger: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        for row in await pool.fetch(LEDGER_SQL):
            ledger[row["card_id"]].append(tuple(row.values())[1:])
        truth = [(t.kind, t.card_id) for t in await store.ground_truth(run.run_id)]
    return dict(ledger), sorted(truth, key=str)


async def test_two_runs_with_one_seed_write_the_same_ledgers_and_ground_truth(
    two_databases: tuple[str, str],
) -> None:
    first_ledger, first_truth = await _run(two_databases[0])
    second_ledger, second_truth = await _run(two_databases[1])

    assert len(first_truth) >= 3
    assert first_truth == second_truth
    assert first_ledger == second_ledger
