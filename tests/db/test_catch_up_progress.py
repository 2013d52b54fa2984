"""A first run that catches up on history shows its progress (issue 19.3).

`monitoring_catch_up_progress()` reports, per watermark, the rows behind the newest row, the
percent done, the rate and the time left; `festmon status` prints it as one line, so a long
first run never looks like a hang.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from festmon_tui.cli.ops_commands import catch_up_line
from tests.db.payment_rows import log_row, put_card
from tests.db.test_cli_ops import run
from tests.db.test_service import service_for


async def _progress(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    doc = json.loads(await conn.fetchval("SELECT monitoring_catch_up_progress()"))
    return {p["detector"]: p for p in doc}


async def _one_batch_of_ten_rows(conn: asyncpg.Connection) -> None:
    """balance_deduction_on_failure has examined 4 of its 10 rows: 6 behind, 40 % done."""
    await put_card(conn, "C1", "100.00")
    for _ in range(10):
        await log_row(conn, "C1", status="failed", amount="1.00")
    await conn.execute("UPDATE monitoring_settings SET detection_batch_size = 4")
    await conn.fetchval("SELECT monitoring_run_rule('balance_deduction_on_failure')")


async def test_a_rule_behind_reports_rows_percent_and_then_caught_up(
    conn: asyncpg.Connection,
) -> None:
    await _one_batch_of_ten_rows(conn)
    behind = (await _progress(conn))["balance_deduction_on_failure"]

    assert behind["caught_up"] is False
    assert behind["rows_behind"] == 6
    assert behind["percent_done"] == 40.0
    # (the card ledger, never folded here, is behind since the install: left out)
    rules = [p for name, p in (await _progress(conn)).items() if name != "card_ledger"]
    assert catch_up_line(rules).startswith(
        "detection catch-up: 40.0 % done (slowest balance_deduction_on_failure)"
    )

    for _ in range(2):
        await conn.fetchval("SELECT monitoring_run_rule('balance_deduction_on_failure')")
    done = (await _progress(conn))["balance_deduction_on_failure"]
    assert (done["caught_up"], done["rows_behind"], done["eta_seconds"]) == (True, 0, 0)


async def test_before_the_first_run_the_ledger_shows_the_whole_log_behind(
    conn: asyncpg.Connection,
) -> None:
    """Installed on history, nothing run yet: the catch-up is visible from its first second
    (the first run creates the rules' watermarks only when it commits)."""
    await put_card(conn, "C1", "100.00")
    for _ in range(5):
        await log_row(conn, "C1", amount="1.00")
    head = await conn.fetchval("SELECT max(log_id) FROM app_transaction_log")

    ledger = (await _progress(conn))["card_ledger"]

    assert (ledger["caught_up"], ledger["rows_behind"], ledger["percent_done"]) == (
        False,
        head,
        0.0,
    )
    assert ledger["eta_seconds"] is None  # no rate measured yet
    assert catch_up_line([ledger]).startswith(
        "detection catch-up: 0.0 % done (slowest card_ledger), time left not known yet"
    )


async def test_status_prints_the_catch_up_line(
    conn: asyncpg.Connection, db_dsn: str, tmp_path: Path
) -> None:
    await put_card(conn, "C1", "100.00")
    await log_row(conn, "C1", status="failed", amount="1.00")
    await conn.fetchval("SELECT run_critical_detection()")

    text = await run("status", dsn=db_dsn, cwd=tmp_path)
    as_json = await run("status", "--json", dsn=db_dsn, cwd=tmp_path)

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("festmon "), lines  # the header first, then the state
    assert lines[1] == "reads: primary"
    assert "detection catch-up: every rule caught up" in lines[2:]
    assert json.loads(as_json.stdout)["database"]["reads"] == {"from": "primary"}
    catch_up = json.loads(as_json.stdout)["catch_up"]
    assert {p["detector"] for p in catch_up} >= {"balance_chain_break", "card_ledger"}
    assert all(p["caught_up"] for p in catch_up)


async def test_the_service_state_carries_the_progress_for_the_dashboard(
    conn: asyncpg.Connection, db_dsn: str
) -> None:
    await _one_batch_of_ten_rows(conn)

    service = service_for(
        db_dsn, viewer=True, run_scheduler=False
    )  # no scheduler: the watermark stays behind
    await service.start()
    try:
        assert await service.wait_connected(10)
        state = await service.refresh()
    finally:
        await service.stop()

    [behind] = [p for p in state.catch_up if not p.caught_up and p.detector != "card_ledger"]
    assert (behind.detector, behind.rows_behind, behind.percent_done) == (
        "balance_deduction_on_failure",
        6,
        40.0,
    )


async def test_the_status_catch_up_line_is_in_its_place_and_escaped(
    conn: asyncpg.Connection, db_dsn: str, tmp_path: Path
) -> None:
    await conn.fetchval("SELECT run_critical_detection()")
    # A watermark row someone wrote by hand: its name is stored text, shown escaped.
    await conn.execute(
        "INSERT INTO monitoring_detector_watermarks (detector_name, source_table, backlog)"
        " VALUES (E'evil\\x1b[2J', 'app_transaction_log', true)"
    )

    text = await run("status", dsn=db_dsn, cwd=tmp_path)

    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout
    lines = text.stdout.splitlines()
    [catch_up] = [i for i, line in enumerate(lines) if line.startswith("detection catch-up:")]
    [leader] = [i for i, line in enumerate(lines) if line.startswith("scheduler leader:")]
    first_job = min(i for i, line in enumerate(lines) if line.startswith("  job "))
    assert leader < catch_up < first_job
    assert "evil" in lines[catch_up]


def test_the_status_line_never_says_100_percent_while_a_rule_is_behind() -> None:
    almost = {"detector": "system_failure_spike", "rows_behind": 40, "percent_done": 100.0}
    line = catch_up_line([{**almost, "eta_seconds": None, "caught_up": False}])
    assert line.startswith("detection catch-up: 99.9 % done (slowest system_failure_spike)")
