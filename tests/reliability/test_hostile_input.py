"""Hostile and odd values in the payment tables: detected, exported literally, never obeyed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import EventFilter
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from tests.reliability.cli import assert_clean_failure, festmon_bytes, run
from tests.reliability.server import Database, ReliabilityServer, create_database, drop_database

MARKUP = "[bold red]x[/]"
HOSTILE = {
    "markup": f"card-{MARKUP}",
    "ansi": "card-\x1b[2J\x1b[31mred\x1b[0m",
    "osc52": "card-\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "c1-csi": "card-\x9b2J",
    "newlines": "card-line1\nline2\r\tend",
    "bidi": "card-abc\u202edcba",
    "quotes": 'card-"=1+1",;\'',
    "long": "card-" + "L" * 10240,
    "emoji": "card-\U0001f37a\u200d",
}
# Anything a terminal could act on: C0 but newline, DEL, C1, bidi controls, line separators.
_TERMINAL_CONTROLS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)

FAILED_PAYMENT_SQL = """
INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,
                                 previous_balance, new_balance, details)
VALUES ($1, 'bar_order', 'failed', $2, $3, $4, $5::jsonb)
"""


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN / Infinity, which are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def details_for(value: str) -> dict[str, Any]:
    nested: Any = {"leaf": value}
    for _ in range(200):
        nested = {"n": nested}
    return {
        "note": value,
        value[:200]: "as a key",
        "nested": nested,
        "int": 123456789012345678901234567890,
        "tiny": 1e-300,
        "escapes": 'quote" backslash\\ slash/ \u2028 \U0001f37a',
    }


async def failed_payment(
    conn: asyncpg.Connection, card: str, details: Any, amount: str = "1.00"
) -> None:
    """A failed payment that still took money: one balance_deduction_on_failure event."""
    await conn.execute(
        FAILED_PAYMENT_SQL,
        card,
        Decimal(amount),
        Decimal("5.00"),
        Decimal("4.00"),
        json.dumps(details) if not isinstance(details, str) else details,
    )


async def test_hostile_card_ids_and_details_are_detected_and_exported_literally(
    rel_db: Database, tmp_path: Path
) -> None:
    conn = await rel_db.admin()
    try:
        for card in HOSTILE.values():
            await failed_payment(conn, card, details_for(card))
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()

    cycle = await run("cycle", "--json", "--database-url", dsn, cwd=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    assert strict_json(cycle.stdout)["success"] is True

    as_json = await asyncio.to_thread(
        festmon_bytes, "events", "--format", "json", "--database-url", dsn, cwd=tmp_path
    )
    assert as_json.returncode == 0, as_json.stderr
    rows = strict_json(as_json.stdout.decode("utf-8"))
    found = {r["card_id"]: r for r in rows if r["detection_algorithm"] != "system_initialization"}
    assert set(found) == set(HOSTILE.values())
    for card, row in found.items():
        stored = row["context_data"]["transaction_details"]
        assert stored == json.loads(json.dumps(details_for(card)))  # exact round trip

    as_csv = await asyncio.to_thread(
        festmon_bytes, "events", "--format", "csv", "--database-url", dsn, cwd=tmp_path
    )
    assert as_csv.returncode == 0, as_csv.stderr
    records = list(csv.DictReader(io.StringIO(as_csv.stdout.decode("utf-8"), newline="")))
    by_card = {r["card_id"]: r for r in records if r["card_id"]}
    assert set(by_card) == set(HOSTILE.values())
    for card, record in by_card.items():
        context = strict_json(record["context_data"])
        assert context["transaction_details"]["note"] == card

    table = await asyncio.to_thread(festmon_bytes, "events", "--database-url", dsn, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    text = table.stdout.decode("utf-8")
    assert not _TERMINAL_CONTROLS.search(text), _TERMINAL_CONTROLS.findall(text)
    assert MARKUP in text  # shown as typed, never rendered
    assert "\\x1b[2J" in text and "\\x9b2J" in text
    assert len(text.splitlines()) == len(HOSTILE) + 3  # header, the events, the init event, count


async def test_deeply_nested_details_do_not_break_the_event_list(
    rel_db: Database, tmp_path: Path
) -> None:
    deep = "[" * 5000 + "]" * 5000
    conn = await rel_db.admin()
    try:
        await failed_payment(conn, "card-deep", '{"deep": ' + deep + "}")
        await failed_payment(conn, "card-plain", {"ok": True})
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()
    assert (await run("cycle", "--database-url", dsn, cwd=tmp_path)).returncode == 0

    for fmt in ("json", "csv", "table"):
        result = await run("events", "--format", fmt, "--database-url", dsn, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "card-deep" in result.stdout and "card-plain" in result.stdout
        if fmt == "json":
            strict_json(result.stdout)

    # The dashboard's path: the service lists the events instead of failing on one of them.
    settings = load_settings({"database_url": dsn}, env_file=None)
    service = PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), run_scheduler=False, listen=False
    )
    await service.start()
    try:
        assert await service.wait_connected(10)
        events = await service.list_events(EventFilter())
        assert {"card-deep", "card-plain"} <= {e.card_id for e in events}
    finally:
        await service.stop()


async def test_huge_and_non_finite_looking_numbers_in_details_keep_the_json_export_valid(
    rel_db: Database, tmp_path: Path
) -> None:
    conn = await rel_db.admin()
    try:
        # jsonb keeps any numeric exactly; a float parser turns 1e400 into infinity.
        await failed_payment(
            conn, "card-numbers", '{"big": 1e400, "neg": -1e-400, "int": 1' + "0" * 400 + "}"
        )
        # 5001 digits: more than Python converts to an int (CVE-2020-10735 limit).
        await failed_payment(conn, "card-huge", '{"huge": 1e5000}')
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()
    assert (await run("cycle", "--database-url", dsn, cwd=tmp_path)).returncode == 0
    result = await run("events", "--format", "json", "--database-url", dsn, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = strict_json(result.stdout)
    details = next(r for r in rows if r["card_id"] == "card-numbers")["context_data"]
    assert details["transaction_details"]["int"] == 10**400
    assert details["transaction_details"]["big"] == 10**400
    huge = next(r for r in rows if r["card_id"] == "card-huge")["context_data"]
    assert "1" + "0" * 5000 in json.dumps(huge)  # shown as the database's text, not dropped
    as_csv = await run("events", "--format", "csv", "--database-url", dsn, cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    assert "Infinity" not in as_csv.stdout


async def test_amounts_at_the_numeric_limit_are_exact_and_beyond_it_are_refused(
    rel_db: Database, tmp_path: Path
) -> None:
    conn = await rel_db.admin()
    try:
        await failed_payment(conn, "card-max", {}, amount="99999999.99")
        with pytest.raises(asyncpg.NumericValueOutOfRangeError):
            await failed_payment(conn, "card-over", {}, amount="100000000.00")
    finally:
        await conn.close()
    dsn = rel_db.tcp_dsn()
    assert (await run("cycle", "--database-url", dsn, cwd=tmp_path)).returncode == 0
    result = await run("events", "--format", "json", "--database-url", dsn, cwd=tmp_path)
    row = next(r for r in strict_json(result.stdout) if r["card_id"] == "card-max")
    assert row["affected_amount"] == "99999999.99"  # a decimal string, never a float


async def test_a_ledger_beyond_the_numeric_limit_does_not_blind_the_balance_rules(
    rel_db: Database,
) -> None:
    conn = await rel_db.admin()
    try:
        await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('card-huge', 99999999.99)")
        for _ in range(3):  # debits without balances: expected = -299,999,999.97
            await conn.execute(
                "INSERT INTO app_transaction_log (card_id, transaction_type, status,"
                " amount_involved) VALUES ('card-huge', 'bar_order', 'completed', 99999999.99)"
            )
        await conn.execute("INSERT INTO table_cards (id, amount) VALUES ('card-small', 75)")
        await conn.execute(
            "INSERT INTO app_transaction_log (card_id, transaction_type, status, amount_involved,"
            " previous_balance, new_balance) VALUES ('card-small', 'stripe_recharge',"
            " 'completed', 50, 0, 50)"
        )
        result = json.loads(await conn.fetchval("SELECT run_critical_detection()"))
        mismatches = await conn.fetch(
            "SELECT card_id, affected_amount::text AS amount,"
            " event_data ->> 'discrepancy' AS discrepancy FROM monitoring_events"
            " WHERE detection_algorithm = 'balance_mismatch_detection'"
        )
        with pytest.raises(asyncpg.NumericValueOutOfRangeError, match="affected_amount"):
            await conn.fetchval(
                "SELECT create_monitoring_event('balance_discrepancy', 'HIGH', 'by-hand',"
                " 'card-by-hand', NULL, 100000000)"
            )
    finally:
        await conn.close()
    assert result["success"], result["errors"]
    found = {r["card_id"]: (r["amount"], r["discrepancy"]) for r in mismatches}
    # The amount beyond numeric(10,2) is not stored as a column value; the evidence keeps it.
    assert found == {
        "card-huge": (None, "399999999.96"),
        "card-small": ("25.00", "25.00"),
    }


async def test_the_database_never_hands_festmon_invalid_utf8_or_malformed_json(
    rel_db: Database,
) -> None:
    conn = await rel_db.admin()
    try:
        with pytest.raises(asyncpg.DataError, match="surrogates not allowed"):  # not sendable
            await conn.execute("INSERT INTO table_cards (id, amount) VALUES ($1, 0)", "card-\udcff")
        with pytest.raises(asyncpg.CharacterNotInRepertoireError):  # nor can SQL make one
            await conn.execute(
                "INSERT INTO table_cards (id, amount)"
                " VALUES (convert_from('\\x63ff'::bytea, 'UTF8'), 0)"
            )
        with pytest.raises(asyncpg.InvalidTextRepresentationError):  # jsonb parses on input
            await failed_payment(conn, "card-json", '{"unterminated": ')
        with pytest.raises(asyncpg.UntranslatableCharacterError):  # no NUL inside jsonb text
            await failed_payment(conn, "card-nul", '{"nul": "\\u0000"}')
    finally:
        await conn.close()


async def test_invalid_utf8_in_a_sql_ascii_database_is_a_clear_error_not_a_crash(
    rel_server: ReliabilityServer, tmp_path: Path
) -> None:
    # A legacy database created with ENCODING 'SQL_ASCII' stores bytes unchecked.
    name = await create_database(rel_server, template=None)
    await drop_database(rel_server, name)
    admin = await asyncpg.connect(rel_server.admin_dsn())
    try:
        await admin.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0"
        )
    finally:
        await admin.close()
    try:
        dsn = rel_server.tcp_dsn(name)
        migrate = await run("db", "migrate", "--with-payment-schema", "--database-url", dsn,
                            cwd=tmp_path)  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        conn = await asyncpg.connect(rel_server.admin_dsn(name))
        try:
            await conn.execute(
                FAILED_PAYMENT_SQL.replace("$1", "convert_from('\\x636172642dff'::bytea,"
                                           " 'SQL_ASCII')").replace("$2", "1").replace(
                    "$3", "5").replace("$4", "4").replace("$5", "'{}'"),
            )  # fmt: skip
        finally:
            await conn.close()
        cycle = await run("cycle", "--database-url", dsn, cwd=tmp_path)
        assert cycle.returncode == 0, cycle.stderr  # detection runs inside the database
        events = await run("events", "--database-url", dsn, cwd=tmp_path)
        message = assert_clean_failure(events, code=1)
        assert "invalid byte sequence" in message and len(message.splitlines()) == 1
    finally:
        await drop_database(rel_server, name)
