"""The dashboard on the real service and a real PostgreSQL: live events, audited actions, faults."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import ConnectionState
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.quit_prompt import QuitPrompt
from festmon_tui.ui.view_state import CyclePhase
from festmon_tui.ui.widgets.header_bar import HeaderBar
from tests.ui.pilot import event_ids, make_app, screen_text, settle, table_rows, until

FAST = {"monitoring_poll_interval_ms": 200, "monitoring_operator": "Maria"}
HOSTILE_CARD = "[bold red]x[/]\x1b]52;c;AAAA\x07"


def service_for(dsn: str, **kwargs: Any) -> PostgresMonitorService:
    settings = load_settings({"database_url": dsn, **FAST}, env_file=None)
    return PostgresMonitorService(settings, ConnectOptions.from_settings(settings, dsn), **kwargs)


async def create_event(
    conn: asyncpg.Connection, severity: str, card: str, data: dict[str, Any] | None = None
) -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', $1, 'balance_mismatch_detection',"
        " $2, NULL, 12.50, 1.0, $3::jsonb, '{}')",
        severity,
        card,
        json.dumps(data or {"actual_balance": "40.00", "expected_balance": "27.50"}),
    )
    return event_id


async def status_of(conn: asyncpg.Connection, event_id: int) -> str:
    status: str = await conn.fetchval(
        "SELECT status FROM monitoring_events WHERE event_id = $1", event_id
    )
    return status


async def test_an_operator_finds_acknowledges_and_resolves_a_problem_in_the_database(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    critical = await create_event(conn, "CRITICAL", "CARD-7")
    service = service_for(db_dsn, run_scheduler=False)
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: critical in event_ids(app), timeout_s=10)
            assert table_rows(app)[0][:4] == ["CRITICAL", str(critical), "balance", "CARD-7"]

            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, EventDetailScreen)
            body = screen_text(app.screen.query_one("#detail-body"))
            assert "The card holds 40.00 but its ledger implies 27.50" in body

            await pilot.press("a")
            await settle(pilot)
            assert await status_of(conn, critical) == "INVESTIGATING"
            await pilot.press("r", *"refunded 12.50 at bar 3", "enter")
            await settle(pilot)
            assert await status_of(conn, critical) == "RESOLVED"
            actions = await conn.fetch(
                "SELECT action, note, actor FROM monitoring_event_actions"
                " WHERE event_id = $1 ORDER BY action_id",
                critical,
            )
            assert [a["action"] for a in actions][-2:] == ["acknowledge", "resolve"]
            assert actions[-1]["note"] == "refunded 12.50 at bar 3"
            actor = actions[-1]["actor"]
            actor = json.loads(actor) if isinstance(actor, str) else actor
            assert actor["operator"] == "Maria" and actor["os_user"]
            await until(
                pilot,
                lambda: (
                    "refunded 12.50 at bar 3" in screen_text(app.screen.query_one("#detail-body"))
                ),
            )
            await pilot.press("escape")
            await settle(pilot)
            assert critical not in event_ids(app)
    finally:
        await service.stop()


async def test_an_event_inserted_by_another_connection_appears_without_a_key_press(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    service = service_for(db_dsn, run_scheduler=False)
    app = make_app(service, startup=service.start, bell=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.monitor_state.connection is ConnectionState.CONNECTED)
            await settle(pilot)
            new = await create_event(conn, "CRITICAL", HOSTILE_CARD)
            await until(pilot, lambda: new in event_ids(app), timeout_s=5)
            row = next(r for r in table_rows(app) if r[1] == str(new))
            assert row[3].startswith("[bold red]x[/]\\x1b]52")  # literal, never interpreted
            await until(pilot, lambda: any(f"#{new}" in n.message for n in app._notifications))
    finally:
        await service.stop()


async def test_a_cycle_run_from_the_dashboard_reports_its_result(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    service = service_for(db_dsn, run_scheduler=False)
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.monitor_state.connection is ConnectionState.CONNECTED)
            await pilot.press("d")
            await until(pilot, lambda: app.cycle.phase is not CyclePhase.RUNNING, timeout_s=20)
            assert app.cycle.phase is CyclePhase.DONE, app.cycle.error
            assert app.cycle.result is not None and app.cycle.result.success
    finally:
        await service.stop()


async def test_a_viewer_changes_nothing_in_the_database(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    event = await create_event(conn, "HIGH", "CARD-9")
    service = service_for(db_dsn, viewer=True)
    app = make_app(service, startup=service.start, viewer=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: event in event_ids(app), timeout_s=10)
            await pilot.press("a", "x", "d")
            await settle(pilot)
            assert await status_of(conn, event) == "OPEN"
            assert "viewer (read-only)" in screen_text(app.screen.query_one(HeaderBar))
    finally:
        await service.stop()


async def test_an_unreachable_database_is_shown_and_the_dashboard_stays_up() -> None:
    service = service_for("postgresql://festmon@127.0.0.1:1/nowhere", run_scheduler=False)
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot,
                lambda: app.monitor_state.connection is ConnectionState.UNAVAILABLE,
                timeout_s=10,
            )
            await pilot.press("s", "a", "enter", "d")
            await settle(pilot)
            assert app.is_running
            assert "DATABASE UNAVAILABLE" in screen_text(app.screen.query_one(HeaderBar))
    finally:
        await service.stop()


async def test_the_leading_dashboard_asks_before_quitting_and_names_its_successor(
    db_dsn: str,
) -> None:
    """17.3 end to end: the lease table tells whether another festmon will take over."""
    fast = {"monitoring_lease_ttl_ms": 3000}
    leader_settings = load_settings({"database_url": db_dsn, **FAST, **fast}, env_file=None)
    leader = PostgresMonitorService(
        leader_settings, ConnectOptions.from_settings(leader_settings, db_dsn)
    )
    standby = PostgresMonitorService(
        leader_settings, ConnectOptions.from_settings(leader_settings, db_dsn)
    )
    app = make_app(leader, startup=leader.start)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: leader.state.leader is not None, timeout_s=15)
            await until(pilot, lambda: bool(leader.state.leader.is_self), timeout_s=15)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitPrompt), timeout_s=10)
            alone = screen_text(app.screen.query_one("#quit-consequence"), width=80)
            assert "No other festmon is running: detection stops." in alone
            await pilot.press("n")
            await settle(pilot)

            await standby.start()  # a second festmon asks for the lease and waits in line
            for _ in range(300):  # until its first lease attempt is in the database
                if (await leader.handover()).standbys == 1:
                    break
                await pilot.pause(0.05)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitPrompt), timeout_s=10)
            said = screen_text(app.screen.query_one("#quit-consequence"), width=80)
            assert "Another festmon will take over within 1 s." in said
            await pilot.press("y")
            await until(pilot, lambda: not app.is_running, timeout_s=10)
    finally:
        await standby.stop()
        await leader.stop()


class CountingService(PostgresMonitorService):
    """The real service, counting the event-list loads the dashboard asks of it."""

    loads = 0

    async def list_events(self, event_filter: Any) -> Any:
        self.loads += 1
        return await super().list_events(event_filter)


async def test_resolving_an_event_reloads_the_list_once_on_a_real_database(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    """16.2: the action's NOTIFY is the one reload; the state refresh it causes is not another."""
    settings = load_settings({"database_url": db_dsn, **FAST}, env_file=None)
    service = CountingService(
        settings, ConnectOptions.from_settings(settings, db_dsn), run_scheduler=False
    )
    critical = await create_event(conn, "CRITICAL", "CARD-ONCE")
    app = make_app(service, startup=service.start, reload_interval_s=3600)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: critical in event_ids(app), timeout_s=10)
            await until(pilot, lambda: (service.state.active_events or 0) >= 1, timeout_s=10)
            await until(pilot, lambda: app.monitor_state.connection is ConnectionState.CONNECTED)
            await until(pilot, lambda: not app.pacer.pending)  # the reloads of connecting
            await settle(pilot)
            loads, active = service.loads, service.state.active_events or 0
            await pilot.press("r", *"refunded", "enter")
            await until(pilot, lambda: critical not in event_ids(app), timeout_s=10)
            # The state refresh the resolve causes (one active event fewer) has arrived too.
            await until(pilot, lambda: service.state.active_events == active - 1, timeout_s=10)
            await until(pilot, lambda: not app.pacer.pending)  # no reload still to come
            barrier = await create_event(conn, "HIGH", "CARD-BARRIER")  # a later change
            await until(pilot, lambda: barrier in event_ids(app), timeout_s=10)
            await until(pilot, lambda: service.state.active_events == active, timeout_s=10)
            await until(pilot, lambda: not app.pacer.pending)
            await settle(pilot)
            assert service.loads == loads + 2  # the resolve's one reload, the barrier's one
    finally:
        await service.stop()
