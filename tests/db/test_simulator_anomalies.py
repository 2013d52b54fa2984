"""Each injected anomaly is caught by exactly the rules it should trip, on its card, with proof."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from festmon_tui.db.simulation import GroundTruth, SimulationStore
from festmon_tui.simulator import anomalies
from festmon_tui.simulator.config import RuleLimits, SimulationConfig
from festmon_tui.simulator.injection import Generator
from festmon_tui.simulator.report import build_report
from festmon_tui.simulator.runner import Simulation
from tests.db.sim_support import detect_everything


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(db_dsn, min_size=2, max_size=8) as created:
        yield created


async def _inject(pool: asyncpg.Pool, generator: Generator) -> tuple[GroundTruth, list[Any]]:
    """A small festival with 5 minutes of history, one anomaly, then one detection cycle."""
    store = SimulationStore(pool)
    config = SimulationConfig(
        seed=5, cards=200, rate_tps=2.0, anomalies_per_min=0, history_s=300, duration_s=0
    )
    simulation = Simulation(store, config, RuleLimits())
    run = await simulation.prepare()
    assert await simulation.inject(generator)
    await simulation.finish()
    async with pool.acquire() as conn:
        await detect_everything(conn)
        events = await conn.fetch(
            "SELECT * FROM monitoring_events"
            " WHERE detection_algorithm <> 'system_initialization' ORDER BY event_id"
        )
    (truth,) = await store.ground_truth(run.run_id)
    assert simulation.stats.divergences == 0 and simulation.stats.errors == 0
    seen = await store.events_seen_since(run.started_at)
    report = build_report({}, run.started_at, [truth], seen)
    assert report.perfect, report.as_json()
    return truth, list(events)


def _only(events: list[Any], algorithm: str) -> tuple[dict[str, Any], Any]:
    (event,) = [e for e in events if e["detection_algorithm"] == algorithm]
    return json.loads(event["event_data"], parse_float=Decimal), event


def _algorithms(events: list[Any]) -> list[str]:
    return sorted(e["detection_algorithm"] for e in events)


async def test_a_failed_payment_that_still_debited_is_a_deduction_and_a_mismatch(
    pool: asyncpg.Pool,
) -> None:
    truth, events = await _inject(pool, anomalies.FailedPaymentDebited())

    assert _algorithms(events) == ["balance_deduction_on_failure", "balance_mismatch_detection"]
    deduction, event = _only(events, "balance_deduction_on_failure")
    amount = Decimal(truth.details["amount"])
    assert event["card_id"] == truth.card_id and event["severity"] == "CRITICAL"
    assert event["transaction_id"] == truth.transaction_ids[0]
    assert deduction["discrepancy"] == amount
    assert deduction["current_balance"] == Decimal(truth.details["balance_after"])
    mismatch, event = _only(events, "balance_mismatch_detection")
    assert event["card_id"] == truth.card_id
    assert mismatch["discrepancy"] == -amount
    assert mismatch["expected_balance"] == Decimal(truth.details["balance_before"])


async def test_three_refusals_in_a_row_are_consecutive_failures(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.FailureBurst())

    assert _algorithms(events) == ["consecutive_failures"]
    data, event = _only(events, "consecutive_failures")
    assert event["card_id"] == truth.card_id and event["severity"] == "HIGH"
    assert data["failure_count"] == 3
    assert data["failed_transactions"] == [str(t) for t in truth.transaction_ids]


async def test_a_bar_replaying_refused_orders_is_a_failure_spike(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.BarFailureSpike())

    assert _algorithms(events) == ["system_failure_spike"]
    data, event = _only(events, "system_failure_spike")
    assert event["card_id"] is None
    assert data["failed_transactions"] >= truth.details["failed_rows"]
    assert data["failure_rate_percent"] > data["threshold_percent"]
    assert len(truth.transaction_ids) == truth.details["failed_rows"]


async def test_a_balance_changed_behind_the_ledger_is_a_mismatch(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.BalanceBehindLedger())

    assert _algorithms(events) == ["balance_mismatch_detection"]
    data, event = _only(events, "balance_mismatch_detection")
    assert event["card_id"] == truth.card_id
    assert data["discrepancy"] == Decimal(truth.details["delta"])
    assert data["actual_balance"] == Decimal(truth.details["balance_after"])


@pytest.mark.parametrize(
    ("variant", "kind"), [("lost_update", "chain_gap"), ("torn_write", "amount_mismatch")]
)
async def test_a_lost_update_or_torn_write_breaks_the_balance_chain(
    pool: asyncpg.Pool, variant: str, kind: str
) -> None:
    truth, events = await _inject(pool, anomalies.BrokenBalanceChain(variant))

    assert truth.kind == variant
    assert _algorithms(events) == ["balance_chain_break"]
    data, event = _only(events, "balance_chain_break")
    assert event["card_id"] == truth.card_id
    assert event["transaction_id"] == truth.transaction_ids[-1]
    assert data["break_kinds"] == [kind]


async def test_an_offline_settlement_below_zero_is_a_negative_balance(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.OfflineOverdraft())

    assert _algorithms(events) == ["negative_balance_detection"]
    data, event = _only(events, "negative_balance_detection")
    assert event["card_id"] == truth.card_id
    assert data["negative_balance"] == Decimal(truth.details["balance_after"]) < 0


async def test_a_double_read_of_one_tap_is_a_temporal_duplicate(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.DoubleRead())

    assert _algorithms(events) == ["temporal_duplicate_detection"]
    data, event = _only(events, "temporal_duplicate_detection")
    assert event["card_id"] == truth.card_id
    assert sorted(data["scan_ids"]) == sorted(truth.scan_log_ids)
    assert data["min_gap_seconds"] < 5


async def test_a_resubmitted_order_is_a_race_between_two_payments(pool: asyncpg.Pool) -> None:
    truth, events = await _inject(pool, anomalies.RacingPayments())

    assert _algorithms(events) == ["concurrent_transaction_detection"]
    data, event = _only(events, "concurrent_transaction_detection")
    assert event["card_id"] == truth.card_id
    assert data["transaction_ids"] == [str(t) for t in truth.transaction_ids]
    assert data["min_gap_seconds"] < 2
