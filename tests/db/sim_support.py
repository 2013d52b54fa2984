"""Helpers shared by the simulator's database tests."""

from __future__ import annotations

import json

import asyncpg


async def detect_everything(conn: asyncpg.Connection) -> None:
    """Run detection cycles until no incremental rule has rows left (batches are bounded)."""
    for _ in range(100):
        doc = json.loads(await conn.fetchval("SELECT run_monitoring_detection_cycle()"))
        rules = [
            rule
            for detector in doc["detection_results"].values()
            for rule in detector.get("rules", {}).values()
        ]
        assert doc["success"], doc
        if not any(rule.get("backlog") for rule in rules):
            return
    raise AssertionError("detection never caught up with the simulated rows")
