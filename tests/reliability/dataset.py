"""Deterministic payment traffic, one anomaly per rule, and the events a fault-free run finds."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

_NAMESPACE = uuid.UUID("6d1f0e4e-9a51-4d0c-8f3b-6a2d1b0c7e55")

INSERT_CARD = """
INSERT INTO table_cards (id, amount) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount
"""
INSERT_LOG = """
INSERT INTO app_transaction_log (transaction_id, card_id, transaction_type, status,
    amount_involved, previous_balance, new_balance, client_request_id, "timestamp")
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
INSERT_SCAN = """
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status, processing_duration_ms)
VALUES ($1, $2, 'success', 120)
"""
EVENTS_SQL = """
SELECT detection_algorithm, fingerprint FROM monitoring_events
WHERE detection_algorithm <> 'system_initialization'
"""

# Every rule the schema runs, so a batch proves each of them survives the fault.
RULES = (
    "balance_deduction_on_failure",
    "consecutive_failures",
    "system_failure_spike",
    "balance_mismatch_detection",
    "negative_balance_detection",
    "balance_chain_break",
    "temporal_duplicate_detection",
    "concurrent_transaction_detection",
)


@dataclass(frozen=True)
class Batch:
    """The rows of one burst of traffic: cards, ledger rows, scans."""

    cards: list[tuple[str, Decimal]]
    log: list[tuple[uuid.UUID, str, str, str, Decimal, Decimal, Decimal, str, datetime]]
    scans: list[tuple[str, datetime]]


def batch(tag: str, start: datetime) -> Batch:
    """Traffic for cards named after `tag`: five clean cards and one anomaly per rule.

    Every anomaly is on its own card, so the expected events do not depend on how the rows are
    split between detection runs.
    """
    cards: list[tuple[str, Decimal]] = []
    log: list[tuple[uuid.UUID, str, str, str, Decimal, Decimal, Decimal, str, datetime]] = []
    scans: list[tuple[str, datetime]] = []
    n = 0

    def row(
        card: str, kind: str, status: str, amount: str, prev: str, new: str, at_s: float
    ) -> None:
        nonlocal n
        n += 1
        tx = uuid.uuid5(_NAMESPACE, f"{tag}/{n}")
        log.append(
            (
                tx,
                card,
                kind,
                status,
                Decimal(amount),
                Decimal(prev),
                Decimal(new),
                f"{tag}-req-{n}",
                start + timedelta(seconds=at_s),
            )
        )

    for i in range(5):  # clean: consistent chains, rows and scans a minute apart
        card = f"{tag}-ok-{i}"
        cards.append((card, Decimal("15.00")))
        row(card, "stripe_recharge", "completed", "20.00", "0", "20.00", i)
        row(card, "bar_order", "completed", "5.00", "20.00", "15.00", 60 + i)
        scans.append((card, start + timedelta(seconds=60 + i)))
    cards.append((f"{tag}-ded", Decimal("50.00")))  # a failed payment that still took money
    row(f"{tag}-ded", "stripe_recharge", "completed", "50.00", "0", "50.00", 10)
    row(f"{tag}-ded", "bar_order", "failed", "10.00", "50.00", "40.00", 70)
    cards.append((f"{tag}-cons", Decimal("20.00")))  # three failures within ten minutes
    row(f"{tag}-cons", "stripe_recharge", "completed", "20.00", "0", "20.00", 11)
    for k in range(3):
        row(f"{tag}-cons", "bar_order", "failed", "30.00", "20.00", "20.00", 80 + 10 * k)
    cards.append((f"{tag}-mis", Decimal("75.00")))  # card balance differs from its ledger
    row(f"{tag}-mis", "stripe_recharge", "completed", "50.00", "0", "50.00", 12)
    cards.append((f"{tag}-neg", Decimal("-5.00")))  # a negative balance, consistent ledger
    row(f"{tag}-neg", "stripe_recharge", "completed", "10.00", "0", "10.00", 13)
    row(f"{tag}-neg", "bar_order", "completed", "15.00", "10.00", "-5.00", 130)
    cards.append((f"{tag}-chain", Decimal("30.00")))  # previous_balance 40 after a 50
    row(f"{tag}-chain", "stripe_recharge", "completed", "50.00", "0", "50.00", 14)
    row(f"{tag}-chain", "bar_order", "completed", "10.00", "40.00", "30.00", 140)
    cards.append((f"{tag}-dup", Decimal("0")))  # two scans one second apart
    scans += [(f"{tag}-dup", start + timedelta(seconds=s)) for s in (150, 151)]
    cards.append((f"{tag}-race", Decimal("80.00")))  # two payments half a second apart
    row(f"{tag}-race", "stripe_recharge", "completed", "100.00", "0", "100.00", 15)
    row(f"{tag}-race", "bar_order", "completed", "10.00", "100.00", "90.00", 160)
    row(f"{tag}-race", "bar_order", "completed", "10.00", "90.00", "80.00", 160.5)
    return Batch(cards, log, scans)


async def insert(conn: asyncpg.Connection, data: Batch) -> None:
    """Write a batch as the payment system would: one transaction."""
    async with conn.transaction():
        await conn.executemany(INSERT_CARD, data.cards)
        await conn.executemany(INSERT_LOG, data.log)
        await conn.executemany(INSERT_SCAN, data.scans)


async def events(conn: asyncpg.Connection) -> Counter[tuple[str, str]]:
    """(detection_algorithm, fingerprint) of every detected event, with multiplicity."""
    rows = await conn.fetch(EVENTS_SQL)
    return Counter((r["detection_algorithm"], r["fingerprint"]) for r in rows)


async def detect_fault_free(conn: asyncpg.Connection) -> Counter[tuple[str, str]]:
    """What the scheduled jobs find with nothing going wrong: critical to the end, then medium."""
    for _ in range(50):  # bounded: one batch per call, 500 rows each by default
        doc = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        if not doc["backlog"]:
            break
    await conn.fetchval("SELECT run_medium_detection()")
    await conn.fetchval("SELECT run_critical_detection()")
    return await events(conn)
