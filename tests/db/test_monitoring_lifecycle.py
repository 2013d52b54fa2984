"""Event lifecycle, its audit log, alerts (acknowledge, escalate), cleanup, NOTIFY."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from tests.db.support import notified_before_barrier

ALICE = {
    "os_user": "alice",
    "ssh_client": "10.0.0.5 50000 22",
    "operator": "Alice",
    "host": "bar-1",
}
BOB = {"os_user": "bob"}


async def _critical_event(conn: asyncpg.Connection, card: str = "C1") -> int:
    return await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', 'CRITICAL', 'manual_check', $1)",
        card,
    )


async def _act(
    conn: asyncpg.Connection, function: str, event_id: int, actor: dict[str, Any], note: str | None
) -> dict[str, Any]:
    # function is one of the fixed lifecycle names, never user input
    return json.loads(
        await conn.fetchval(
            f"SELECT {function}($1, $2::jsonb, $3)", event_id, json.dumps(actor), note
        )
    )


async def _event(conn: asyncpg.Connection, event_id: int) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM monitoring_events WHERE event_id = $1", event_id)


async def _alert(conn: asyncpg.Connection, event_id: int) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT * FROM alert_history WHERE monitoring_event_id = $1", event_id
    )


async def test_acknowledging_makes_the_operator_the_owner_and_acknowledges_the_alert(
    conn: asyncpg.Connection,
) -> None:
    event_id = await _critical_event(conn)

    result = await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)

    assert (result["from_status"], result["to_status"], result["alerts_updated"]) == (
        "OPEN",
        "INVESTIGATING",
        1,
    )
    event = await _event(conn, event_id)
    assert (event["status"], event["acknowledged_by"]) == ("INVESTIGATING", "Alice")
    assert event["acknowledged_at"] is not None
    alert = await _alert(conn, event_id)
    assert (alert["acknowledged_by"], alert["resolved_at"]) == ("Alice", None)
    action = await conn.fetchrow(
        "SELECT * FROM monitoring_event_actions WHERE action_id = $1", result["action_id"]
    )
    assert (action["action"], action["from_status"], action["to_status"]) == (
        "acknowledge",
        "OPEN",
        "INVESTIGATING",
    )
    assert (action["actor_os_user"], action["actor_ssh_client"], action["actor_operator"]) == (
        "alice",
        "10.0.0.5 50000 22",
        "Alice",
    )
    assert action["actor_host"] == "bar-1"
    assert action["db_user"] == await conn.fetchval("SELECT session_user")


async def test_unacknowledging_returns_the_event_and_its_alert_to_open(
    conn: asyncpg.Connection,
) -> None:
    event_id = await _critical_event(conn)
    await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)

    result = await _act(conn, "unacknowledge_monitoring_event", event_id, BOB, "handing over")

    assert result["to_status"] == "OPEN"
    event = await _event(conn, event_id)
    assert (event["status"], event["acknowledged_by"], event["acknowledged_at"]) == (
        "OPEN",
        None,
        None,
    )
    assert (await _alert(conn, event_id))["acknowledged_at"] is None


async def test_resolving_needs_a_note_and_resolves_the_alert(conn: asyncpg.Connection) -> None:
    event_id = await _critical_event(conn)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="a note is required"):
        await _act(conn, "resolve_monitoring_event", event_id, ALICE, "   ")

    await _act(conn, "resolve_monitoring_event", event_id, ALICE, "card re-credited")

    event = await _event(conn, event_id)
    assert (event["status"], event["resolution_notes"], event["resolved_by"]) == (
        "RESOLVED",
        "card re-credited",
        "Alice",
    )
    alert = await _alert(conn, event_id)
    assert alert["resolved_at"] is not None
    assert alert["resolution_time_seconds"] >= 0
    assert alert["acknowledged_by"] == "Alice"


async def test_marking_a_false_positive_needs_a_note(conn: asyncpg.Connection) -> None:
    event_id = await _critical_event(conn)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="a note is required"):
        await _act(conn, "mark_monitoring_event_false_positive", event_id, ALICE, None)

    await _act(conn, "mark_monitoring_event_false_positive", event_id, BOB, "test card")

    event = await _event(conn, event_id)
    assert (event["status"], event["resolved_by"]) == ("FALSE_POSITIVE", "bob")


@pytest.mark.parametrize(
    ("setup", "function", "message"),
    [
        (
            ["acknowledge_monitoring_event"],
            "acknowledge_monitoring_event",
            "cannot acknowledge event .*: it is INVESTIGATING \\(acknowledged by Alice\\)",
        ),
        ([], "unacknowledge_monitoring_event", "cannot unacknowledge event .*: it is OPEN"),
        (
            ["resolve_monitoring_event"],
            "resolve_monitoring_event",
            "cannot resolve event .*: it is already RESOLVED",
        ),
        (
            ["resolve_monitoring_event"],
            "acknowledge_monitoring_event",
            "cannot acknowledge event .*: it is RESOLVED",
        ),
        (
            ["mark_monitoring_event_false_positive"],
            "resolve_monitoring_event",
            "cannot resolve event .*: it is already FALSE_POSITIVE",
        ),
    ],
)
async def test_an_illegal_transition_is_refused_with_a_clear_error(
    conn: asyncpg.Connection, setup: list[str], function: str, message: str
) -> None:
    event_id = await _critical_event(conn)
    for step in setup:
        await _act(conn, step, event_id, ALICE, "done")
    actions_before = await conn.fetchval("SELECT count(*) FROM monitoring_event_actions")

    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match=message):
        await _act(conn, function, event_id, ALICE, "again")

    assert await conn.fetchval("SELECT count(*) FROM monitoring_event_actions") == actions_before


async def test_an_unknown_event_or_an_anonymous_actor_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NoDataFoundError, match="monitoring event 999999 does not exist"):
        await _act(conn, "acknowledge_monitoring_event", 999999, ALICE, None)
    event_id = await _critical_event(conn)
    with pytest.raises(asyncpg.InvalidParameterValueError, match=r"operator.*os_user"):
        await _act(conn, "acknowledge_monitoring_event", event_id, {"ssh_client": "x"}, None)


async def test_the_action_log_is_append_only_even_for_the_owner(conn: asyncpg.Connection) -> None:
    event_id = await _critical_event(conn)
    await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)

    for statement in (
        "UPDATE monitoring_event_actions SET note = 'rewritten'",
        "DELETE FROM monitoring_event_actions",
        "TRUNCATE monitoring_event_actions",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
    assert await conn.fetchval("SELECT count(*) FROM monitoring_event_actions") == 1


async def test_a_viewer_role_can_read_events_but_the_database_refuses_its_actions(
    conn: asyncpg.Connection,
) -> None:
    event_id = await _critical_event(conn)
    await conn.execute("SET ROLE monitoring_reader")
    try:
        assert await conn.fetchval("SELECT count(*) FROM monitoring_events") == 2
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT run_monitoring_detection_cycle()")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE monitoring_events SET status = 'RESOLVED'")
    finally:
        await conn.execute("RESET ROLE")


async def test_the_writer_role_runs_the_whole_lifecycle(conn: asyncpg.Connection) -> None:
    event_id = await _critical_event(conn)
    await conn.execute("SET ROLE monitoring_writer")
    try:
        await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)
        await _act(conn, "resolve_monitoring_event", event_id, ALICE, "fixed")
        json.loads(await conn.fetchval("SELECT escalate_monitoring_alerts()"))
        json.loads(await conn.fetchval("SELECT cleanup_monitoring_data(30)"))
        assert json.loads(await conn.fetchval("SELECT refresh_monitoring_views()"))["success"]
    finally:
        await conn.execute("RESET ROLE")
    assert (await _event(conn, event_id))["status"] == "RESOLVED"


async def test_an_alert_left_unacknowledged_is_escalated_until_acknowledged(
    conn: asyncpg.Connection,
) -> None:
    event_id = await _critical_event(conn)
    fresh_id = await _critical_event(conn, "C2")
    await conn.execute(
        "UPDATE alert_history SET alert_timestamp = now() - interval '6 minutes'"
        " WHERE monitoring_event_id = $1",
        event_id,
    )

    first = json.loads(await conn.fetchval("SELECT escalate_monitoring_alerts()"))
    again = json.loads(await conn.fetchval("SELECT escalate_monitoring_alerts()"))

    alert = await _alert(conn, event_id)
    assert first["alert_ids"] == [alert["alert_id"]]
    assert again["escalated"] == 0  # the next level waits another escalation period
    assert alert["escalation_level"] == 1
    assert (await _alert(conn, fresh_id))["escalation_level"] == 0
    actions = await conn.fetch(
        "SELECT action, actor_operator FROM monitoring_event_actions WHERE event_id = $1", event_id
    )
    assert [tuple(a) for a in actions] == [("escalate", "festmon")]

    await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)
    await conn.execute("UPDATE alert_history SET escalated_at = now() - interval '1 hour'")
    after_ack = json.loads(await conn.fetchval("SELECT escalate_monitoring_alerts()"))
    assert after_ack["alert_ids"] == [(await _alert(conn, fresh_id))["alert_id"]]


async def test_a_repeat_of_an_active_critical_problem_raises_no_second_alert(
    conn: asyncpg.Connection,
) -> None:
    first = await _critical_event(conn)
    second = await _critical_event(conn)

    assert first == second
    assert await conn.fetchval("SELECT count(*) FROM alert_history") == 1
    assert (await _event(conn, first))["occurrence_count"] == 2


async def test_cleanup_deletes_old_closed_events_and_keeps_active_ones_and_all_history(
    conn: asyncpg.Connection,
) -> None:
    old_open = await _critical_event(conn, "OPEN_OLD")
    old_investigating = await _critical_event(conn, "ACK_OLD")
    old_resolved = await _critical_event(conn, "RESOLVED_OLD")
    new_resolved = await _critical_event(conn, "RESOLVED_NEW")
    await _act(conn, "acknowledge_monitoring_event", old_investigating, ALICE, None)
    await _act(conn, "resolve_monitoring_event", old_resolved, ALICE, "fixed")
    await _act(conn, "resolve_monitoring_event", new_resolved, ALICE, "fixed")
    await conn.execute(
        """
        UPDATE monitoring_events
           SET detection_timestamp = now() - interval '40 days',
               last_seen_at = now() - interval '40 days',
               resolved_at = CASE WHEN resolved_at IS NOT NULL
                                  THEN now() - interval '40 days' END
         WHERE event_id = ANY($1::bigint[])
        """,
        [old_open, old_investigating, old_resolved],
    )
    await conn.execute("UPDATE alert_history SET alert_timestamp = now() - interval '100 days'")
    await conn.execute(
        "UPDATE system_health_snapshots SET snapshot_timestamp = now() - interval '40 days'"
    )
    await conn.execute("SELECT update_system_health_snapshot()")

    result = json.loads(await conn.fetchval("SELECT cleanup_monitoring_data(30)"))

    assert result["success"] is True
    assert (result["deleted_events"], result["deleted_snapshots"]) == (1, 1)
    remaining = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM monitoring_events")}
    assert old_resolved not in remaining
    assert {old_open, old_investigating, new_resolved} <= remaining
    # Alerts of active events survive their own 90-day retention; the closed ones do not.
    alert_events = {
        r["monitoring_event_id"]
        for r in await conn.fetch("SELECT monitoring_event_id FROM alert_history")
    }
    assert alert_events == {old_open, old_investigating}
    # The audit keeps the history of the deleted event.
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM monitoring_event_actions WHERE event_id = $1", old_resolved
        )
        == 1
    )
    assert await conn.fetchval("SELECT count(*) FROM system_health_snapshots") == 1


async def test_cleanup_refuses_a_retention_below_one_day(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="retention_days"):
        await conn.fetchval("SELECT cleanup_monitoring_data(0)")


async def test_inserts_and_status_changes_are_notified_with_a_small_payload(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    try:
        await listener.add_listener(
            "festmon_events", lambda *args: received.put_nowait(json.loads(args[3]))
        )
        event_id = await _critical_event(conn)
        await _critical_event(conn)  # a repeat of the active problem
        await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)
        await _act(conn, "add_monitoring_event_note", event_id, ALICE, "card holder called")

        inserted = await asyncio.wait_for(received.get(), timeout=5)
        repeated = await asyncio.wait_for(received.get(), timeout=5)
        changed = await asyncio.wait_for(received.get(), timeout=5)
        noted = await asyncio.wait_for(received.get(), timeout=5)
        later = await notified_before_barrier(conn, "festmon_events", received)
    finally:
        await listener.close()

    assert inserted == {
        "event_id": event_id,
        "event_type": "balance_discrepancy",
        "severity": "CRITICAL",
        "status": "OPEN",
        "op": "INSERT",
    }
    assert repeated == {**inserted, "op": "repeat", "occurrence_count": 2}
    assert (changed["status"], changed["op"]) == ("INVESTIGATING", "UPDATE")
    assert (noted["status"], noted["op"]) == ("INVESTIGATING", "note")
    assert later == []  # the status change is not also notified as a repeat


async def test_a_repeat_of_a_closed_event_is_a_new_event_not_a_repeat_notice(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    event_id = await _critical_event(conn)
    await _act(conn, "resolve_monitoring_event", event_id, ALICE, "fixed")
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    try:
        await listener.add_listener(
            "festmon_events", lambda *args: received.put_nowait(json.loads(args[3]))
        )
        again = await _critical_event(conn)
        notice = await asyncio.wait_for(received.get(), timeout=5)
        later = await notified_before_barrier(conn, "festmon_events", received)
    finally:
        await listener.close()

    assert again != event_id
    assert (notice["event_id"], notice["op"]) == (again, "INSERT")
    assert later == []


async def test_a_note_is_added_to_the_history_without_changing_the_event(
    conn: asyncpg.Connection,
) -> None:
    event_id = await _critical_event(conn)
    await _act(conn, "acknowledge_monitoring_event", event_id, ALICE, None)
    before = await _event(conn, event_id)

    result = await _act(conn, "add_monitoring_event_note", event_id, BOB, "  refunded at bar 3 ")

    after = await _event(conn, event_id)
    assert (result["action"], result["from_status"], result["to_status"]) == (
        "note",
        "INVESTIGATING",
        "INVESTIGATING",
    )
    assert result["note"] == "refunded at bar 3" and result["alerts_updated"] == 0
    assert (after["status"], after["acknowledged_by"]) == ("INVESTIGATING", "Alice")
    assert after["updated_at"] >= before["updated_at"]
    alert = await conn.fetchrow(
        "SELECT acknowledged_by, resolved_at FROM alert_history WHERE monitoring_event_id = $1",
        event_id,
    )
    assert (alert["acknowledged_by"], alert["resolved_at"]) == ("Alice", None)
    actions = await conn.fetch(
        "SELECT action, from_status, to_status, actor_os_user, note"
        " FROM monitoring_event_actions WHERE event_id = $1 ORDER BY action_id",
        event_id,
    )
    assert [tuple(a) for a in actions] == [
        ("acknowledge", "OPEN", "INVESTIGATING", "alice", None),
        ("note", "INVESTIGATING", "INVESTIGATING", "bob", "refunded at bar 3"),
    ]
    # A closed event still takes notes (a post-mortem).
    await _act(conn, "resolve_monitoring_event", event_id, ALICE, "fixed")
    late = await _act(conn, "add_monitoring_event_note", event_id, ALICE, "root cause: bar 3")
    assert (late["from_status"], late["to_status"]) == ("RESOLVED", "RESOLVED")


async def test_a_note_needs_text_an_actor_and_an_existing_event(conn: asyncpg.Connection) -> None:
    event_id = await _critical_event(conn)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="note is required"):
        await _act(conn, "add_monitoring_event_note", event_id, ALICE, "   ")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="operator"):
        await _act(conn, "add_monitoring_event_note", event_id, {"host": "x"}, "hello")
    with pytest.raises(asyncpg.NoDataFoundError, match="does not exist"):
        await _act(conn, "add_monitoring_event_note", 987654, ALICE, "hello")
    assert (
        await conn.fetchval("SELECT count(*) FROM monitoring_event_actions WHERE action = 'note'")
        == 0
    )
    await conn.execute("SET ROLE monitoring_reader")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _act(conn, "add_monitoring_event_note", event_id, ALICE, "hello")
    finally:
        await conn.execute("RESET ROLE")
