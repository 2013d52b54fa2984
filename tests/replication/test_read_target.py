"""MONITORING_READ_URL on real streaming replication: reads on the standby, actions on the primary.

One primary + hot standby pair serves the module; a test that stops a server starts it again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.models import ConnectionState, Event, EventFilter, EventStatus, Verb
from festmon_tui.service.api import ActionRefused
from festmon_tui.service.documents import health_document
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.service.replica import NO_PRIMARY
from festmon_tui.settings import load_settings
from festmon_tui.ui.widgets.header_bar import HeaderBar
from tests.api.support import READ_TOKEN, running_api
from tests.reliability.cli import assert_clean_failure, environment, run
from tests.replication.cluster import ReplicatedPair
from tests.replication.test_standby import _failed_but_debited, _festival
from tests.ui.pilot import event_ids, make_app, notifications, screen_text, settle, until

FAST = {"monitoring_poll_interval_ms": 200, "monitoring_operator": "Maria"}
DEDUCTION = "balance_deduction_on_failure"


def service_for(
    database_url: str, read_url: str | None = None, **kwargs: Any
) -> PostgresMonitorService:
    values: dict[str, Any] = {"database_url": database_url, **FAST}
    if read_url is not None:
        values["monitoring_read_url"] = read_url
    settings = load_settings(values, env_file=None)
    options = ConnectOptions.from_settings(settings, database_url)
    return PostgresMonitorService(settings, options, run_scheduler=False, **kwargs)


@pytest.fixture
async def festival(pair: ReplicatedPair) -> AsyncIterator[str]:
    """A fresh database on the primary with one detected, replayed failed-but-debited payment."""
    name = await _festival(pair)
    service = service_for(pair.primary.dsn(name))
    async with service:
        assert await service.wait_connected(15), service.state.last_error
        assert (await service.run_cycle_now()).total_events_created == 1
    await pair.wait_replayed()
    yield name


async def deduction(service: PostgresMonitorService) -> Event:
    events = await service.list_events(EventFilter())
    return next(e for e in events if e.detection_algorithm == DEDUCTION)


async def test_reads_go_to_the_standby_and_an_acknowledgement_waits_for_replication(
    pair: ReplicatedPair, festival: str
) -> None:
    service = service_for(pair.primary.dsn(festival), pair.standby.dsn(festival))
    async with service:
        assert await service.wait_connected(15), service.state.last_error
        await service.refresh()
        replica = service.state.replica
        assert replica is not None
        assert (replica.reads_from, replica.lag_s, replica.actions_unavailable) == (
            "standby",
            0,
            None,
        )
        assert service.state.live_updates == "poll"  # a standby cannot LISTEN
        event = await deduction(service)

        standby = await asyncpg.connect(pair.standby.dsn(festival))
        try:
            await standby.execute("SELECT pg_wal_replay_pause()")
            acked = await service.act(event.event_id, Verb.ACKNOWLEDGE, "looking at it")
            assert acked.status is EventStatus.INVESTIGATING  # done, on the primary
            await service.refresh()
            replica = service.state.replica
            assert replica is not None and replica.pending_replication == (event.event_id,)
            # The reads are the paused standby's: it does not have the acknowledgement yet.
            assert (await deduction(service)).status is EventStatus.OPEN
        finally:
            await standby.execute("SELECT pg_wal_replay_resume()")
            await standby.close()

        await pair.wait_replayed()
        await service.refresh()
        replica = service.state.replica
        assert replica is not None and replica.pending_replication == ()
        assert (await deduction(service)).status is EventStatus.INVESTIGATING


async def test_with_the_standby_away_reads_fall_back_to_the_primary_with_a_notice(
    pair: ReplicatedPair, festival: str
) -> None:
    service = service_for(pair.primary.dsn(festival), pair.standby.dsn(festival))
    async with service:
        assert await service.wait_connected(15), service.state.last_error
        pair.standby.stop()
        try:
            await service.refresh()
            replica = service.state.replica
            assert replica is not None and replica.reads_from == "primary"
            assert replica.standby_error
            reads = health_document(service.state, datetime.now(UTC))["database"]["reads"]
            assert reads["from"] == "primary" and reads["standby_error"] == replica.standby_error
            assert service.state.connection is ConnectionState.CONNECTED
            assert (await deduction(service)).card_id == "CARD-A"
        finally:
            pair.standby.start()
        await pair.wait_replayed()
        await service.refresh()
        replica = service.state.replica
        assert replica is not None
        assert (replica.reads_from, replica.standby_error) == ("standby", None)


async def test_with_the_primary_away_the_standby_serves_and_actions_are_refused(
    pair: ReplicatedPair, festival: str
) -> None:
    primary, standby = pair.primary.dsn(festival), pair.standby.dsn(festival)
    service = service_for(primary, standby)
    async with service:
        assert await service.wait_connected(15), service.state.last_error
        event = await deduction(service)
        pair.primary.stop()
        try:
            await service.refresh()
            replica = service.state.replica
            assert replica is not None and replica.reads_from == "standby"
            assert replica.actions_unavailable is not None
            assert "primary is away" in replica.actions_unavailable
            assert service.state.connection is ConnectionState.CONNECTED
            assert (await deduction(service)).event_id == event.event_id
            with pytest.raises(ActionRefused, match="primary is away"):
                await service.act(event.event_id, Verb.ACKNOWLEDGE)
            with pytest.raises(ActionRefused, match="primary is away"):
                await service.run_cycle_now()

            # A viewer started now, with only the standby reachable, shows the events.
            viewer = service_for(primary, standby, viewer=True)
            async with viewer:
                assert await viewer.wait_connected(15), viewer.state.last_error
                assert (await deduction(viewer)).event_id == event.event_id
        finally:
            pair.primary.start()
    await pair.wait_replayed()
    conn = await asyncpg.connect(primary)
    try:
        assert await conn.fetchval("SELECT count(*) FROM monitoring_event_actions") == 0
    finally:
        await conn.close()


async def test_database_url_naming_a_standby_reads_and_polls_it_and_refuses_actions(
    pair: ReplicatedPair, festival: str
) -> None:
    standby = pair.standby.dsn(festival)
    viewer = service_for(standby, viewer=True)
    operator = service_for(standby)
    async with viewer, operator:
        for service in (viewer, operator):
            assert await service.wait_connected(15), service.state.last_error
            assert service.state.replica is not None
            assert service.state.replica.reads_from == "standby"
            assert service.state.live_updates == "poll"
            assert not service.state.scheduler_enabled
        event = await deduction(viewer)
        assert (await deduction(operator)).event_id == event.event_id
        with pytest.raises(ActionRefused) as refused:
            await operator.act(event.event_id, Verb.ACKNOWLEDGE)
        assert str(refused.value) == NO_PRIMARY


def header(app: Any) -> str:
    return screen_text(app.screen.query_one(HeaderBar), width=400)


async def test_the_dashboard_on_a_standby_polls_new_events_and_shows_each_failure(
    pair: ReplicatedPair, festival: str
) -> None:
    service = service_for(pair.primary.dsn(festival), pair.standby.dsn(festival))
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: "standby (polling), lag 0s" in header(app), timeout_s=15)
            conn = await asyncpg.connect(pair.primary.dsn(festival))
            try:
                await _failed_but_debited(conn, "CARD-B")
            finally:
                await conn.close()
            assert (await service.run_cycle_now()).total_events_created == 1
            await until(pilot, lambda: len(event_ids(app)) >= 2, timeout_s=15)
            shown = set(event_ids(app))

            pair.standby.stop()
            try:
                await until(pilot, lambda: "READS ON PRIMARY" in header(app), timeout_s=15)
                assert shown <= set(event_ids(app))  # read from the primary now
            finally:
                pair.standby.start()
            await until(pilot, lambda: "standby (polling)" in header(app), timeout_s=30)

            pair.primary.stop()
            try:
                await until(pilot, lambda: "ACTIONS UNAVAILABLE" in header(app), timeout_s=15)
                assert "standby (polling)" in header(app)
                await pilot.press("a")
                await settle(pilot)
                await until(pilot, lambda: any("primary is away" in n for n in notifications(app)))
            finally:
                pair.primary.start()
            await until(pilot, lambda: "ACTIONS UNAVAILABLE" not in header(app), timeout_s=30)
    finally:
        await service.stop()


async def test_the_read_api_answers_from_the_standby_while_the_primary_is_away(
    pair: ReplicatedPair, festival: str
) -> None:
    primary, standby = pair.primary.dsn(festival), pair.standby.dsn(festival)
    async with running_api(primary, monitoring_read_url=standby) as api:
        async with api.client(READ_TOKEN) as client:
            before = (await client.get("/events")).json()
            pair.primary.stop()
            try:
                await api.service.refresh()
                page = await client.get("/events")
                detail = await client.get(f"/events/{before['events'][0]['event_id']}")
            finally:
                pair.primary.start()
    assert page.status_code == 200, page.text
    assert page.json()["pagination"]["total"] == before["pagination"]["total"] >= 1
    assert detail.status_code == 200, detail.text


async def test_cli_reads_answer_from_the_standby_and_an_action_is_refused_with_the_primary_away(
    pair: ReplicatedPair, festival: str, tmp_path: Path
) -> None:
    env = environment(
        DATABASE_URL=pair.primary.dsn(festival),
        MONITORING_READ_URL=pair.standby.dsn(festival),
    )
    pair.primary.stop()
    try:
        events = await run("events", "--format", "json", cwd=tmp_path, env=env)
        health = await run("health", "--json", cwd=tmp_path, env=env)
        action = await run("ack", "2", "--note", "primary is down", cwd=tmp_path, env=env)
    finally:
        pair.primary.start()

    assert events.returncode == 0, events.stderr
    assert [
        e["card_id"] for e in json.loads(events.stdout) if e["detection_algorithm"] == DEDUCTION
    ] == ["CARD-A"]
    assert health.returncode == 2, health.stderr  # one CRITICAL event is active
    assert json.loads(health.stdout)["status"] == "CRITICAL"
    reads = json.loads(health.stdout)["database"]["reads"]
    assert reads["from"] == "standby"
    assert "primary" in reads["actions_unavailable"]
    message = assert_clean_failure(action)
    assert "primary is away" in message, message
