"""`festmon simulate`: writes only to demo/test databases, and reports on a run afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg

from tests.db.sim_support import detect_everything


async def _festmon(*args: str, dsn: str, timeout_s: float = 180) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITORING_")}
    env["DATABASE_URL"] = dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "festmon_tui",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_simulate_refuses_a_database_without_the_reference_payment_schema(
    empty_db_dsn: str,
) -> None:
    code, _out, err = await _festmon("simulate", "--duration", "1", dsn=empty_db_dsn)

    assert code == 1
    assert "no festmon reference payment schema" in err
    assert "Traceback" not in err
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('table_cards')") is None
    finally:
        await conn.close()


async def test_a_simulated_run_reported_after_a_detection_cycle_is_perfect(db_dsn: str) -> None:
    code, out, err = await _festmon(
        "simulate",
        "--duration", "6",
        "--rate", "20",
        "--cards", "300",
        "--anomaly-rate", "60",
        "--seed", "21",
        dsn=db_dsn,
    )  # fmt: skip
    assert code == 0, err
    assert out == ""
    assert "seed 21" in err

    conn = await asyncpg.connect(db_dsn)
    try:
        await detect_everything(conn)
    finally:
        await conn.close()
    code, out, err = await _festmon("simulate", "--report-only", "--json", dsn=db_dsn)

    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["run"]["seed"] == 21
    assert report["totals"]["injected"] >= 4
    assert report["totals"]["missed"] == 0 and report["totals"]["false_events"] == 0, json.dumps(
        report
    )
    assert report["perfect"] is True


async def test_report_only_without_any_run_says_so(db_dsn: str) -> None:
    code, _out, err = await _festmon("simulate", "--report-only", dsn=db_dsn)

    assert code == 1
    assert "no simulation run in" in err


async def test_simulate_report_waits_for_a_running_scheduler_and_is_perfect(db_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITORING_")}
    env["DATABASE_URL"] = db_dsn
    fast = ("--monitoring-interval-critical", "1000", "--monitoring-interval-medium", "2000")
    scheduler = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "festmon_tui", "run", "--headless", *fast,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    try:
        code, out, err = await _festmon(
            "simulate",
            "--duration", "6",
            "--rate", "20",
            "--cards", "300",
            "--anomaly-rate", "60",
            "--seed", "22",
            "--report",
            "--json",
            *fast,
            dsn=db_dsn,
        )  # fmt: skip
    finally:
        scheduler.terminate()
        await asyncio.wait_for(scheduler.wait(), 10)

    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    assert not [n for n in report["notes"] if "detection run" in n], report["notes"]
    assert report["totals"]["injected"] >= 4, json.dumps(report["run"]) + err
    assert report["perfect"] is True, json.dumps(report["rules"])
