"""Measure detection cost on a database loaded by generate_festival.py.

Usage:
    python benchmarks/bench_detection.py --dsn postgresql://... --label 1M [--rounds 5]
        [--explain benchmarks/results/explain-1M.txt] [--json benchmarks/results/bench-1M.json]

Run it on a throw-away copy of the loaded database (CREATE DATABASE run TEMPLATE bench): it
migrates the copy and writes payments and events into it.

Measures, in this order:
  1. applying the migrations to the loaded database (this includes building the reference
     payment schema's recommended detection indexes, migrations/payments/V0002);
  2. the first full cycle on the fresh database (run_monitoring_detection_cycle), with
     initial_lookback anchored to 24 hours before the newest generated row;
  3. the catch-up: a first run examines at most detection_batch_size source rows per rule
     (and folds ledger_batch_size log rows into the card ledger), so the history within
     initial_lookback takes several runs. The critical job is run again while it reports a
     backlog, then the medium job likewise (what the scheduler does: a job with a backlog runs
     again at once); total and per-batch times are reported for each;
  4. the steady state, `--rounds` times: 1 000 new bar orders through the reference payment
     procedure (plus one NFC scan each) on cards spread over the whole card table, then one
     critical job (run_critical_detection) timed; median, p95 and per-rule medians;
  5. the full balance sweep (run_medium_detection), the health snapshot;
  6. the events found against the injected ground truth (every anomaly found, nothing else);
  7. with --explain, the plan of every statement the rules run for one more round (critical
     job, medium job, health snapshot) through auto_explain, keeping the statements that took
     at least --explain-min-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg

from festmon_tui.db.migrations import migrate

# Cards for one round: candidates k = start, start + 1, ... mapped to card numbers by
# k * 7919 mod cards (a bijection, 7919 being prime), so every round touches cards spread over
# the whole table (and its indexes) instead of neighbouring ids, and rounds never share a card.
PICK_CARDS = """
SELECT coalesce(array_agg(id), '{}')
FROM (
    SELECT t.id
    FROM generate_series($1::bigint, $1::bigint + $2::bigint * 3 - 1) AS k
    JOIN table_cards AS t ON t.id = 'card-' || lpad(((k * 7919) % $3 + 1)::text, 7, '0')
    WHERE t.amount >= 10
      -- a card already tampered with would (rightly) show a chain break on its next payment
      AND t.id NOT IN (SELECT card_id FROM benchmark_ground_truth WHERE card_id IS NOT NULL)
    LIMIT $2
) picked
"""

NEW_ORDERS = """
SELECT count(*) FILTER (WHERE (sp_process_bar_order(
           id, '[{"product_name": "beer", "unit_price": 1.50, "quantity": 1}]'::jsonb, 1.50,
           'bench-' || $1 || '-' || id)->>'success')::boolean)
FROM unnest($2::text[]) AS id
"""

NEW_SCANS = """
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp, scan_status, processing_duration_ms,
                          device_identifier, operation_id)
SELECT id, clock_timestamp(), 'success', 120, 'bar-bench', 'bench-' || $1 || '-' || id
FROM unnest($2::text[]) AS id
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

SERVER_SETTINGS = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "effective_cache_size",
    "max_parallel_workers_per_gather",
    "jit",
    "random_page_cost",
)

# Safety net for the catch-up loops (a job that always reports a backlog is a bug).
MAX_CATCH_UP_RUNS = 2000


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (the maximum for fewer than 20 values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "runs": len(values),
        "median_ms": round(statistics.median(values), 1) if values else None,
        "p95_ms": round(_p95(values), 1) if values else None,
        "min_ms": round(min(values), 1) if values else None,
        "max_ms": round(max(values), 1) if values else None,
        "all_ms": [round(v, 1) for v in values],
    }


async def _timed(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await conn.fetchval(sql, *args)
    return (time.perf_counter() - started) * 1000, value


async def _job(conn: asyncpg.Connection, name: str) -> tuple[float, dict[str, Any]]:
    ms, doc = await _timed(conn, f"SELECT {name}()")
    return ms, json.loads(doc)


async def _catch_up(conn: asyncpg.Connection, name: str) -> dict[str, Any]:
    """Run a job again while it reports a backlog; every run's time and the rules' rows."""
    times: list[float] = []
    rows = 0
    while True:
        ms, doc = await _job(conn, name)
        times.append(ms)
        rows += sum(int(r.get("rows_examined") or 0) for r in doc["rules"].values())
        if not doc["success"]:
            raise RuntimeError(f"{name}() failed during catch-up: {doc['errors']}")
        if not doc["backlog"]:
            break
        if len(times) >= MAX_CATCH_UP_RUNS:
            raise RuntimeError(f"{name}() still reports a backlog after {len(times)} runs")
    return {
        "runs": len(times),
        "total_s": round(sum(times) / 1000, 2),
        "per_run_median_ms": round(statistics.median(times), 1),
        "per_run_max_ms": round(max(times), 1),
        "rule_rows_examined": rows,
        "last_run_ms": round(times[-1], 1),
    }


async def _new_traffic(
    conn: asyncpg.Connection, label: str, round_no: int, cards: int, count: int = 1000
) -> None:
    # Candidate blocks of 3 * count per round: disjoint (mod cards) for cards / (3 * count)
    # rounds, i.e. 33 rounds on 100 000 cards.
    assert 3 * count * (round_no + 1) <= cards, "not enough cards for that many rounds"
    picked: list[str] = await conn.fetchval(PICK_CARDS, 3 * count * round_no, count, cards)
    assert len(picked) == count, f"round {round_no}: only {len(picked)} cards to pay with"
    made = await conn.fetchval(NEW_ORDERS, f"{label}-{round_no}", picked)
    assert made == count, f"round {round_no}: only {made} orders succeeded"
    await conn.execute(NEW_SCANS, f"{label}-{round_no}", picked)


def _rule_medians(docs: list[dict[str, Any]]) -> dict[str, float]:
    per_rule: dict[str, list[float]] = {}
    for doc in docs:
        for name, rule in doc["rules"].items():
            per_rule.setdefault(name, []).append(float(rule.get("duration_ms") or 0))
    return {name: round(statistics.median(v), 1) for name, v in per_rule.items()}


async def bench(
    dsn: str, label: str, rounds: int, explain: Path | None, explain_min_ms: float
) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    # The machine's load (1, 5, 15 min) when the run starts and ends: a busy shared host makes
    # every timing noisier, so it is recorded next to them.
    results: dict[str, Any] = {"label": label, "load_average_start": os.getloadavg()}
    try:
        await conn.execute("SET statement_timeout = 0")
        results["server"] = {s: await conn.fetchval(f"SHOW {s}") for s in SERVER_SETTINGS}
        results["log_rows"] = await conn.fetchval("SELECT count(*) FROM app_transaction_log")
        results["cards"] = cards = await conn.fetchval("SELECT count(*) FROM table_cards")
        results["scans"] = await conn.fetchval("SELECT count(*) FROM nfc_scan_log")

        started = time.perf_counter()
        applied = await migrate(conn, with_payment_schema=True)
        results["migrate_ms"] = _ms(time.perf_counter() - started)
        results["migrate_applied"] = [f.display for f in applied]
        await conn.execute("ANALYZE")
        # initial_lookback (default 24 hours) counts back from now(): anchor it to the data
        # instead (24 hours before the newest generated row), so that the first cycle examines
        # the same history whenever the benchmark runs after the data was generated.
        await conn.execute(
            """
            UPDATE monitoring_settings
               SET initial_lookback = now() - (SELECT max("timestamp") FROM app_transaction_log)
                                      + interval '24 hours'
            """
        )
        settings = await conn.fetchrow(
            "SELECT detection_batch_size, ledger_batch_size, initial_lookback::text"
            " FROM monitoring_settings"
        )
        results["monitoring_settings"] = dict(settings)

        # 2-3. First cycle, then the catch-up of the history within initial_lookback.
        ms, doc = await _timed(conn, "SELECT run_monitoring_detection_cycle()")
        first = json.loads(doc)
        results["first_cycle_ms"] = round(ms, 1)
        results["first_cycle_events_created"] = first["total_events_created"]
        started = time.perf_counter()
        results["catch_up_critical"] = await _catch_up(conn, "run_critical_detection")
        results["catch_up_medium"] = await _catch_up(conn, "run_medium_detection")
        results["catch_up_total_s"] = round(time.perf_counter() - started, 2)
        results["first_cycle_plus_catch_up_s"] = round(
            results["catch_up_total_s"] + results["first_cycle_ms"] / 1000, 2
        )

        ms, _ = await _job(conn, "run_critical_detection")
        results["critical_idle_ms"] = round(ms, 1)

        # 4. Steady state: 1 000 new transactions, one critical job.
        critical: list[float] = []
        docs: list[dict[str, Any]] = []
        for r in range(rounds):
            await _new_traffic(conn, label, r, cards)
            ms, doc = await _job(conn, "run_critical_detection")
            assert not doc["backlog"] and doc["success"], doc
            critical.append(ms)
            docs.append(doc)
        results["critical_after_1000"] = _summary(critical)
        results["critical_after_1000_rule_median_ms"] = _rule_medians(docs)

        # 5. Full sweep and health snapshot.
        sweep: list[float] = []
        sweep_docs: list[dict[str, Any]] = []
        for _ in range(3):
            ms, doc = await _job(conn, "run_medium_detection")
            assert doc["success"], doc
            sweep.append(ms)
            sweep_docs.append(doc)
        results["full_sweep"] = _summary(sweep)
        results["full_sweep_rule_median_ms"] = _rule_medians(sweep_docs)
        results["full_sweep_cards_checked"] = sweep_docs[-1]["rules"][
            "balance_mismatch_detection"
        ].get("cards_checked")

        health = [
            (await _timed(conn, "SELECT update_system_health_snapshot()"))[0] for _ in range(5)
        ]
        results["health_snapshot"] = _summary(health)

        # 6. Ground truth.
        truth = await conn.fetchrow(FOUND_VS_TRUTH)
        results["ground_truth"] = {
            "injected": truth["injected"],
            "detected": truth["detected"],
            "unexpected": truth["unexpected"],
            "unexpected_list": json.loads(truth["unexpected_list"]),
            "missed_list": json.loads(truth["missed_list"]),
        }
        results["load_average_end"] = os.getloadavg()
        if explain is not None:
            results["plans"] = await _explain(conn, label, rounds, cards, explain_min_ms)
    finally:
        await conn.close()
    return results


def _condensed(message: str, query_lines: int = 3, width: int = 200) -> str:
    """An auto_explain message cut to what a reader needs: the first lines of the query, the
    plan without memory-storage notes, long lines (card id lists) shortened."""
    lines = message.splitlines()
    out: list[str] = []
    in_query = False
    kept = 0
    for line in lines:
        if line.startswith("Query Text:"):
            in_query, kept = True, 0
        elif in_query and (
            line.startswith("Query Parameters:") or line[:1].isalpha() or "(cost=" in line
        ):
            in_query = False
        if in_query:
            kept += 1
            if kept <= query_lines:
                out.append(line[:width])
            elif kept == query_lines + 1:
                out.append("        [...]")
            continue
        if "Storage: Memory" in line:
            continue
        out.append(line if len(line) <= width else line[:width] + " [...]")
    return "\n".join(out)


async def _explain(
    conn: asyncpg.Connection, label: str, rounds: int, cards: int, min_ms: float
) -> list[str]:
    """Plans of the statements the jobs run (auto_explain, nested statements, >= min_ms)."""
    plans: list[str] = []

    def collect(_conn: Any, message: Any) -> None:
        text = str(message.message)
        if not text.startswith("duration:"):
            return
        try:
            duration = float(text.split()[1])
        except (IndexError, ValueError):
            duration = 0.0
        if duration >= min_ms:
            plans.append(_condensed(text))

    await _new_traffic(conn, label, rounds, cards)
    await conn.execute("LOAD 'auto_explain'")
    await conn.execute("SET auto_explain.log_min_duration = 0")
    await conn.execute("SET auto_explain.log_nested_statements = on")
    await conn.execute("SET auto_explain.log_analyze = on")
    await conn.execute("SET auto_explain.log_buffers = on")
    await conn.execute("SET client_min_messages = log")
    conn.add_log_listener(collect)
    for title, sql in (
        ("critical job after 1 000 new transactions", "SELECT run_critical_detection()"),
        ("medium job (full balance sweep)", "SELECT run_medium_detection()"),
        ("health snapshot", "SELECT update_system_health_snapshot()"),
    ):
        plans.append(f"######## {title}: {sql}")
        await conn.execute(sql)
    await conn.execute("SET client_min_messages = notice")
    conn.remove_log_listener(collect)
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", type=Path)
    parser.add_argument(
        "--explain-min-ms",
        type=float,
        default=1.0,
        help="keep the plans of statements that took at least this long (default 1 ms)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(
        bench(args.dsn, args.label, args.rounds, args.explain, args.explain_min_ms)
    )
    plans = results.pop("plans", None)
    if plans is not None and args.explain is not None:
        args.explain.parent.mkdir(parents=True, exist_ok=True)
        args.explain.write_text("\n\n".join(plans) + "\n")
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
