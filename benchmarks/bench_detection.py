"""Measure detection cost on a database loaded by generate_festival.py.

Usage:
    python benchmarks/bench_detection.py --dsn postgresql://... --label 1M [--rounds 5]
        [--explain benchmarks/results/explain-1M.txt] [--json benchmarks/results/bench-1M.json]

Measures, in this order: applying the monitoring migrations to the loaded database, the first
full cycle (run_monitoring_detection_cycle), a critical cycle (run_critical_detection) after each
batch of 1 000 new bar orders made through the reference payment procedure, the full balance
sweep (run_medium_detection), the health snapshot; then checks the events against the injected
ground truth and, with --explain, records every rule query's plan through auto_explain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg

from festmon_tui.db.migrations import migrate

NEW_ORDERS = """
SELECT count(*) FILTER (WHERE (sp_process_bar_order(
           id, '[{"product_name": "beer", "unit_price": 1.50, "quantity": 1}]'::jsonb, 1.50,
           'bench-' || $1 || '-' || id)->>'success')::boolean)
FROM (SELECT id FROM table_cards
      WHERE amount >= 10
        -- a card already tampered with would (rightly) show a chain break on its next payment
        AND id NOT IN (SELECT card_id FROM benchmark_ground_truth)
      ORDER BY id OFFSET $2 LIMIT $3) picked
"""

FOUND_VS_TRUTH = """
WITH found AS (
    SELECT DISTINCT detection_algorithm AS rule, coalesce(card_id, '') AS card_id
    FROM monitoring_events
    WHERE detection_algorithm <> 'system_initialization'
)
SELECT
    (SELECT count(*) FROM benchmark_ground_truth) AS injected,
    (SELECT count(*) FROM benchmark_ground_truth g
      WHERE EXISTS (SELECT 1 FROM found f WHERE f.rule = g.rule AND f.card_id = g.card_id))
        AS detected,
    (SELECT count(*) FROM found f
      WHERE NOT EXISTS (SELECT 1 FROM benchmark_ground_truth g
                        WHERE g.rule = f.rule AND g.card_id = f.card_id)) AS unexpected,
    (SELECT coalesce(json_agg(f), '[]') FROM found f
      WHERE NOT EXISTS (SELECT 1 FROM benchmark_ground_truth g
                        WHERE g.rule = f.rule AND g.card_id = f.card_id)) AS unexpected_list,
    (SELECT coalesce(json_agg(g), '[]') FROM benchmark_ground_truth g
      WHERE NOT EXISTS (SELECT 1 FROM found f WHERE f.rule = g.rule AND f.card_id = g.card_id))
        AS missed_list
"""


async def _timed(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await conn.fetchval(sql, *args)
    return (time.perf_counter() - started) * 1000, value


async def bench(dsn: str, label: str, rounds: int, explain: Path | None) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    results: dict[str, Any] = {"label": label}
    try:
        await conn.execute("SET statement_timeout = 0")
        results["server_version"] = await conn.fetchval("SHOW server_version")
        results["log_rows"] = await conn.fetchval("SELECT count(*) FROM app_transaction_log")
        results["cards"] = await conn.fetchval("SELECT count(*) FROM table_cards")
        results["scans"] = await conn.fetchval("SELECT count(*) FROM nfc_scan_log")

        started = time.perf_counter()
        applied = await migrate(conn, with_payment_schema=True)
        results["migrate_ms"] = round((time.perf_counter() - started) * 1000, 1)
        results["migrate_applied"] = len(applied)
        await conn.execute("ANALYZE")

        ms, doc = await _timed(conn, "SELECT run_monitoring_detection_cycle()")
        results["first_cycle_ms"] = round(ms, 1)
        results["first_cycle"] = json.loads(doc)

        ms, _ = await _timed(conn, "SELECT run_critical_detection()")
        results["critical_idle_ms"] = round(ms, 1)

        critical: list[float] = []
        for r in range(rounds):
            made = await conn.fetchval(NEW_ORDERS, f"{label}-{r}", 1000 * r + 17, 1000)
            assert made == 1000, f"round {r}: only {made} orders succeeded"
            ms, _ = await _timed(conn, "SELECT run_critical_detection()")
            critical.append(ms)
        results["critical_after_1000_ms"] = [round(x, 1) for x in critical]
        results["critical_after_1000_median_ms"] = round(statistics.median(critical), 1)

        sweep = [(await _timed(conn, "SELECT run_medium_detection()"))[0] for _ in range(3)]
        results["full_sweep_ms"] = [round(x, 1) for x in sweep]
        results["full_sweep_median_ms"] = round(statistics.median(sweep), 1)

        health = [
            (await _timed(conn, "SELECT update_system_health_snapshot()"))[0] for _ in range(3)
        ]
        results["health_snapshot_median_ms"] = round(statistics.median(health), 1)

        truth = await conn.fetchrow(FOUND_VS_TRUTH)
        results["ground_truth"] = {
            "injected": truth["injected"],
            "detected": truth["detected"],
            "unexpected": truth["unexpected"],
            "unexpected_list": json.loads(truth["unexpected_list"]),
            "missed_list": json.loads(truth["missed_list"]),
        }
        if explain is not None:
            results["plans"] = await _explain(conn, label)
    finally:
        await conn.close()
    return results


async def _explain(conn: asyncpg.Connection, label: str) -> list[str]:
    """Record the plan of every statement the rules run, via auto_explain (nested statements)."""
    plans: list[str] = []

    def collect(_conn: Any, message: Any) -> None:
        if "Query Text" in str(message.message) or "duration" in str(message.message):
            plans.append(str(message.message))

    conn.add_log_listener(collect)
    await conn.execute("LOAD 'auto_explain'")
    await conn.execute("SET auto_explain.log_min_duration = 0")
    await conn.execute("SET auto_explain.log_nested_statements = on")
    await conn.execute("SET auto_explain.log_analyze = on")
    await conn.execute("SET auto_explain.log_buffers = on")
    await conn.execute("SET client_min_messages = log")
    made = await conn.fetchval(NEW_ORDERS, f"{label}-explain", 1000 * 50 + 17, 1000)
    assert made == 1000
    await conn.execute("SELECT run_critical_detection()")
    await conn.execute("SELECT run_medium_detection()")
    await conn.execute("SET client_min_messages = notice")
    conn.remove_log_listener(collect)
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(bench(args.dsn, args.label, args.rounds, args.explain))
    plans = results.pop("plans", None)
    if plans is not None and args.explain is not None:
        args.explain.parent.mkdir(parents=True, exist_ok=True)
        args.explain.write_text("\n\n".join(plans))
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": __import__("os").cpu_count(),
    }
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
