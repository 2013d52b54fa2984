"""The reference payment schema: atomic, idempotent payments and the deployment guide's SQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from festmon_tui.resources import migrations_dir

BAR_ORDER = "SELECT sp_process_bar_order($1, $2::jsonb, $3, $4, $5)"
RECHARGE = "SELECT sp_process_recharge($1, $2, $3, $4)"

BEER = {"name": "beer", "unit_price": "5.00", "quantity": 2}
FREE_WATER = {"name": "water", "unit_price": 0, "quantity": 1}

# Verbatim from PHASE4_DEPLOYMENT_GUIDE.md §5.1, §5.2 and §5.3 (only trailing spaces dropped):
# operators paste these into psql, so the schema must accept them as written.
GUIDE_5_1_TRANSACTION_INSERT = """
INSERT INTO app_transaction_log (
    transaction_id,
    card_id,
    transaction_type,
    status,
    amount_involved,
    previous_balance,
    new_balance,
    timestamp,
    details
) VALUES (
    gen_random_uuid(),
    'TEST_CARD_001',
    'bar_order',
    'failed',
    10.00,
    50.00,
    40.00,  -- Balance changed despite failure
    NOW(),
    '{"test": "deployment_verification"}'
);
"""

GUIDE_5_2_NEGATIVE_BALANCE_UPDATE = """
UPDATE table_cards
SET amount = -5.00
WHERE id = 'TEST_CARD_001';
"""

GUIDE_5_3_NFC_INSERT = """
INSERT INTO nfc_scan_log (card_id_scanned, scan_timestamp) VALUES
('TEST_CARD_001', NOW()),
('TEST_CARD_001', NOW() + INTERVAL '1 second'),
('TEST_CARD_001', NOW() + INTERVAL '2 seconds');
"""


def _document(raw: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(raw, parse_float=Decimal)
    return document


async def _bar_order(
    conn: asyncpg.Connection,
    card_id: str,
    total: str,
    request_id: str,
    items: list[dict[str, Any]] | None = None,
    point_of_sale: int = 1,
) -> dict[str, Any]:
    raw = await conn.fetchval(
        BAR_ORDER, card_id, json.dumps(items or [BEER]), Decimal(total), request_id, point_of_sale
    )
    return _document(raw)


async def _add_card(conn: asyncpg.Connection, card_id: str, balance: str) -> None:
    await conn.execute(
        "INSERT INTO table_cards (id, amount) VALUES ($1, $2)", card_id, Decimal(balance)
    )


async def _balance(conn: asyncpg.Connection, card_id: str) -> Decimal:
    balance: Decimal = await conn.fetchval("SELECT amount FROM table_cards WHERE id = $1", card_id)
    return balance


async def _log(conn: asyncpg.Connection, card_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM app_transaction_log WHERE card_id = $1 ORDER BY log_id", card_id
    )


@pytest.fixture
async def second_conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def third_conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _run_while_card_is_locked(
    conn: asyncpg.Connection, card_id: str, *calls: Awaitable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Start the calls while `conn` holds the card's row lock, release it once all of them wait.

    This forces the calls to overlap inside the database instead of hoping the scheduler does.
    """
    blocker = conn.transaction()
    await blocker.start()
    await conn.execute("SELECT 1 FROM table_cards WHERE id = $1 FOR UPDATE", card_id)
    running = asyncio.gather(*calls)
    try:
        async with asyncio.timeout(30):
            while await _lock_waiters(conn) < len(calls):
                assert not running.done(), "a call did not wait for the card lock"
    finally:
        await blocker.commit()
    return await running


async def _lock_waiters(conn: asyncpg.Connection) -> int:
    # pg_stat_activity is one snapshot per transaction; the caller is inside one.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    waiters: int = await conn.fetchval(
        """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'
        """
    )
    return waiters


async def test_a_bar_order_debits_the_card_and_logs_one_completed_row_in_the_balance_chain(
    conn: asyncpg.Connection,
) -> None:
    await _add_card(conn, "CARD-A", "50.00")

    first = await _bar_order(conn, "CARD-A", "10.00", "req-1", [BEER, FREE_WATER], point_of_sale=3)
    second = await _bar_order(conn, "CARD-A", "12.50", "req-2")

    assert first["success"] is True
    assert (first["previous_balance"], first["new_balance"]) == (Decimal("50.00"), Decimal("40.00"))
    assert (second["previous_balance"], second["new_balance"]) == (
        Decimal("40.00"),
        Decimal("27.50"),
    )
    assert await _balance(conn, "CARD-A") == Decimal("27.50")
    log = await _log(conn, "CARD-A")
    assert len(log) == 2
    row = log[0]
    assert (row["transaction_type"], row["status"]) == ("bar_order", "completed")
    assert row["amount_involved"] == Decimal("10.00")
    assert (row["previous_balance"], row["new_balance"]) == (Decimal("50.00"), Decimal("40.00"))
    assert str(row["transaction_id"]) == first["transaction_id"]
    assert row["client_request_id"] == "req-1"
    assert row["edge_function_name"] == "process-bar-order"
    details = _document(row["details"])
    assert details["order_id"] == first["order_id"]
    assert details["point_of_sale"] == 3
    assert [item["name"] for item in details["items"]] == ["beer", "water"]
    assert log[1]["previous_balance"] == log[0]["new_balance"]
    assert log[1]["new_balance"] == await _balance(conn, "CARD-A")
    order = await conn.fetchrow("SELECT * FROM bar_orders WHERE id = $1", first["order_id"])
    assert order is not None
    assert (order["total_amount"], order["status"], order["point_of_sale"]) == (
        Decimal("10.00"),
        "completed",
        3,
    )
    items = await conn.fetch(
        "SELECT product_name, price, quantity FROM bar_order_items WHERE order_id = $1 ORDER BY id",
        first["order_id"],
    )
    assert [tuple(item) for item in items] == [
        ("beer", Decimal("5.00"), 2),
        ("water", Decimal("0.00"), 1),
    ]


async def test_insufficient_funds_logs_one_failed_row_and_leaves_the_balance_untouched(
    conn: asyncpg.Connection,
) -> None:
    await _add_card(conn, "CARD-POOR", "5.00")

    result = await _bar_order(conn, "CARD-POOR", "10.00", "req-poor")

    assert result["success"] is False
    assert result["error_code"] == "INSUFFICIENT_FUNDS"
    assert result["current_balance"] == Decimal("5.00")
    assert await _balance(conn, "CARD-POOR") == Decimal("5.00")
    [row] = await _log(conn, "CARD-POOR")
    assert (row["transaction_type"], row["status"]) == ("bar_order", "failed")
    assert row["previous_balance"] == row["new_balance"] == Decimal("5.00")
    assert row["amount_involved"] == Decimal("10.00")
    assert str(row["transaction_id"]) == result["transaction_id"]
    assert "Insufficient funds" in _document(row["details"])["reason"]
    assert await conn.fetchval("SELECT count(*) FROM bar_orders") == 0


async def test_an_unknown_card_is_refused_with_a_failed_row_that_has_no_balances(
    conn: asyncpg.Connection,
) -> None:
    result = await _bar_order(conn, "CARD-GHOST", "3.00", "req-ghost")

    assert (result["success"], result["error_code"]) == (False, "CARD_NOT_FOUND")
    [row] = await _log(conn, "CARD-GHOST")
    assert row["status"] == "failed"
    assert row["previous_balance"] is None and row["new_balance"] is None


async def test_a_replayed_client_request_id_is_not_charged_twice_and_gets_the_cached_payload(
    conn: asyncpg.Connection,
) -> None:
    await _add_card(conn, "CARD-R", "50.00")

    first = await _bar_order(conn, "CARD-R", "10.00", "req-replay")
    replay = await _bar_order(conn, "CARD-R", "10.00", "req-replay")

    assert replay == first
    assert await _balance(conn, "CARD-R") == Decimal("40.00")
    assert len(await _log(conn, "CARD-R")) == 1
    assert await conn.fetchval("SELECT count(*) FROM bar_orders") == 1


async def test_a_replay_of_a_refused_request_returns_the_same_refusal_without_a_second_failed_row(
    conn: asyncpg.Connection,
) -> None:
    await _add_card(conn, "CARD-R", "5.00")

    first = await _bar_order(conn, "CARD-R", "10.00", "req-refused")
    replay = await _bar_order(conn, "CARD-R", "10.00", "req-refused")

    assert replay == first
    assert len(await _log(conn, "CARD-R")) == 1


async def test_a_client_request_id_reused_for_another_card_is_refused_as_a_duplicate(
    conn: asyncpg.Connection,
) -> None:
    await _add_card(conn, "CARD-1", "50.00")
    await _add_card(conn, "CARD-2", "50.00")
    await _bar_order(conn, "CARD-1", "10.00", "req-shared")

    result = await _bar_order(conn, "CARD-2", "10.00", "req-shared")

    assert (result["success"], result["error_code"]) == (False, "DUPLICATE_REQUEST")
    assert await _balance(conn, "CARD-2") == Decimal("50.00")
    assert await _log(conn, "CARD-2") == []


@pytest.mark.parametrize(
    ("total", "items"),
    [
        ("0.00", [BEER]),
        ("2.005", [BEER]),
        ("10.00", [{"name": "beer", "unit_price": -5, "quantity": 2}]),
        ("10.00", [{"name": "beer", "unit_price": 5, "quantity": 0}]),
        ("10.00", {"name": "beer"}),
    ],
    ids=["zero-total", "sub-cent-total", "negative-price", "zero-quantity", "items-not-a-list"],
)
async def test_a_malformed_bar_order_is_refused_without_touching_anything(
    conn: asyncpg.Connection, total: str, items: Any
) -> None:
    await _add_card(conn, "CARD-M", "50.00")

    raw = await conn.fetchval(BAR_ORDER, "CARD-M", json.dumps(items), Decimal(total), "req-m", 1)

    result = _document(raw)
    assert (result["success"], result["error_code"]) == (False, "INVALID_REQUEST")
    assert await _balance(conn, "CARD-M") == Decimal("50.00")
    assert await _log(conn, "CARD-M") == []
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_two_concurrent_bar_orders_on_one_card_lose_no_update(
    conn: asyncpg.Connection, second_conn: asyncpg.Connection, third_conn: asyncpg.Connection
) -> None:
    await _add_card(conn, "CARD-C", "100.00")

    results = await _run_while_card_is_locked(
        conn,
        "CARD-C",
        _bar_order(second_conn, "CARD-C", "30.00", "req-c1"),
        _bar_order(third_conn, "CARD-C", "20.00", "req-c2"),
    )

    assert all(r["success"] for r in results)
    assert await _balance(conn, "CARD-C") == Decimal("50.00")
    log = await _log(conn, "CARD-C")
    assert log[0]["previous_balance"] == Decimal("100.00")
    assert log[1]["previous_balance"] == log[0]["new_balance"]
    assert log[1]["new_balance"] == Decimal("50.00")


async def test_when_funds_cover_one_of_two_concurrent_orders_the_other_gets_insufficient_funds(
    conn: asyncpg.Connection, second_conn: asyncpg.Connection, third_conn: asyncpg.Connection
) -> None:
    await _add_card(conn, "CARD-C", "30.00")

    results = await _run_while_card_is_locked(
        conn,
        "CARD-C",
        _bar_order(second_conn, "CARD-C", "20.00", "req-c1"),
        _bar_order(third_conn, "CARD-C", "20.00", "req-c2"),
    )

    assert sorted(r["success"] for r in results) == [False, True]
    [refused] = [r for r in results if not r["success"]]
    assert refused["error_code"] == "INSUFFICIENT_FUNDS"
    assert refused["current_balance"] == Decimal("10.00")
    assert await _balance(conn, "CARD-C") == Decimal("10.00")
    log = await _log(conn, "CARD-C")
    assert [row["status"] for row in log] == ["completed", "failed"]
    assert log[1]["previous_balance"] == log[1]["new_balance"] == Decimal("10.00")


async def test_a_concurrent_duplicate_waits_for_the_first_request_and_returns_its_cached_payload(
    conn: asyncpg.Connection, second_conn: asyncpg.Connection, third_conn: asyncpg.Connection
) -> None:
    await _add_card(conn, "CARD-D", "50.00")

    first, duplicate = await _run_while_card_is_locked(
        conn,
        "CARD-D",
        _bar_order(second_conn, "CARD-D", "10.00", "req-dup"),
        _bar_order(third_conn, "CARD-D", "10.00", "req-dup"),
    )

    assert first == duplicate
    assert first["success"] is True
    assert await _balance(conn, "CARD-D") == Decimal("40.00")
    assert len(await _log(conn, "CARD-D")) == 1


@pytest.mark.parametrize(
    ("call", "args", "transaction_type", "edge_function_name", "paid_by_card"),
    [
        (
            "SELECT sp_process_checkpoint_recharge($1, $2, 'card', 'staff-7', 'req-cp', 'gate-2')",
            (),
            "checkpoint_recharge",
            "process-checkpoint-recharge",
            True,
        ),
        (
            "SELECT sp_process_stripe_recharge($1, $2, 'cs_test_1', '{\"source\": \"test\"}')",
            (),
            "stripe_recharge",
            "stripe-webhook",
            True,
        ),
        (
            "SELECT sp_process_standard_recharge($1, $2, 'cash', 'req-std')",
            (),
            "standard_recharge",
            "process-standard-recharge",
            False,
        ),
        (
            RECHARGE,
            ("standard_recharge", "req-generic"),
            "standard_recharge",
            "process-standard-recharge",
            False,
        ),
    ],
    ids=["checkpoint", "stripe", "standard", "generic"],
)
async def test_each_recharge_type_credits_the_card(
    conn: asyncpg.Connection,
    call: str,
    args: tuple[str, ...],
    transaction_type: str,
    edge_function_name: str,
    paid_by_card: bool,
) -> None:
    await _add_card(conn, "CARD-T", "4.50")

    result = _document(await conn.fetchval(call, "CARD-T", Decimal("20.00"), *args))

    assert result["success"] is True
    assert (result["previous_balance"], result["new_balance"]) == (
        Decimal("4.50"),
        Decimal("24.50"),
    )
    assert await _balance(conn, "CARD-T") == Decimal("24.50")
    [row] = await _log(conn, "CARD-T")
    assert (row["transaction_type"], row["status"]) == (transaction_type, "completed")
    assert row["amount_involved"] == Decimal("20.00")
    assert row["edge_function_name"] == edge_function_name
    recharge = await conn.fetchrow("SELECT * FROM recharges WHERE id = $1", result["recharge_id"])
    assert recharge is not None
    assert (recharge["id_card"], recharge["amount"]) == ("CARD-T", Decimal("20.00"))
    assert recharge["paid_by_card"] is paid_by_card


async def test_a_redelivered_stripe_session_is_credited_once(conn: asyncpg.Connection) -> None:
    await _add_card(conn, "CARD-S", "0.00")
    webhook = "SELECT sp_process_stripe_recharge('CARD-S', 15.00, 'cs_live_9', '{}')"

    first = _document(await conn.fetchval(webhook))
    redelivery = _document(await conn.fetchval(webhook))

    assert redelivery == first
    assert await _balance(conn, "CARD-S") == Decimal("15.00")
    assert len(await _log(conn, "CARD-S")) == 1


async def test_a_recharge_of_an_unknown_card_is_refused_with_a_failed_row(
    conn: asyncpg.Connection,
) -> None:
    result = _document(
        await conn.fetchval(RECHARGE, "CARD-GHOST", Decimal("5.00"), "checkpoint_recharge", "req-g")
    )

    assert (result["success"], result["error_code"]) == (False, "CARD_NOT_FOUND")
    [row] = await _log(conn, "CARD-GHOST")
    assert (row["transaction_type"], row["status"]) == ("checkpoint_recharge", "failed")
    assert await conn.fetchval("SELECT count(*) FROM recharges") == 0


@pytest.mark.parametrize(
    ("amount", "recharge_type"),
    [
        ("0.00", "standard_recharge"),
        ("-5.00", "standard_recharge"),
        ("1.005", "standard_recharge"),
        ("5.00", "refund"),
    ],
)
async def test_an_invalid_recharge_is_refused_without_touching_anything(
    conn: asyncpg.Connection, amount: str, recharge_type: str
) -> None:
    await _add_card(conn, "CARD-V", "1.00")

    result = _document(
        await conn.fetchval(RECHARGE, "CARD-V", Decimal(amount), recharge_type, "req-v")
    )

    assert (result["success"], result["error_code"]) == (False, "INVALID_REQUEST")
    assert await _balance(conn, "CARD-V") == Decimal("1.00")
    assert await _log(conn, "CARD-V") == []
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_the_deployment_guide_transaction_insert_is_accepted_verbatim(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(GUIDE_5_1_TRANSACTION_INSERT)

    [row] = await _log(conn, "TEST_CARD_001")
    assert (row["status"], row["previous_balance"], row["new_balance"]) == (
        "failed",
        Decimal("50.00"),
        Decimal("40.00"),
    )


async def test_the_deployment_guide_nfc_insert_is_accepted_verbatim(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(GUIDE_5_3_NFC_INSERT)

    statuses = await conn.fetch(
        "SELECT scan_status FROM nfc_scan_log WHERE card_id_scanned = 'TEST_CARD_001'"
    )
    assert [r["scan_status"] for r in statuses] == ["success"] * 3


async def test_a_negative_balance_can_be_written_with_update_and_the_update_is_stamped(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """
        INSERT INTO table_cards (id, amount, created_at, updated_at)
        VALUES ('TEST_CARD_001', 50.00, '2025-07-01', '2025-07-01')
        """
    )

    await conn.execute(GUIDE_5_2_NEGATIVE_BALANCE_UPDATE)

    card = await conn.fetchrow("SELECT amount, created_at, updated_at FROM table_cards")
    assert card is not None
    assert card["amount"] == Decimal("-5.00")
    assert card["updated_at"] > card["created_at"]


async def test_the_payment_procedures_file_can_be_applied_again(conn: asyncpg.Connection) -> None:
    await _add_card(conn, "CARD-A", "20.00")

    await conn.execute((migrations_dir() / "payments" / "R__payment_procedures.sql").read_text())

    assert (await _bar_order(conn, "CARD-A", "10.00", "req-again"))["success"] is True
