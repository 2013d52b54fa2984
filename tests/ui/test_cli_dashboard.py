"""`festmon` / `festmon dashboard`: argument handling, bad settings, and the deferred service."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from festmon_tui.cli import build_parser, main
from festmon_tui.cli.ui_commands import run_dashboard_command
from festmon_tui.models import ChangeKind, ConnectionState, EventFilter, Verb
from festmon_tui.service.api import ActionRefused, DeferredService, Unavailable
from tests.ui.fake_service import FakeMonitorService
from tests.ui.pilot import event_ids, make_app, settle


def test_plain_festmon_and_festmon_dashboard_open_the_dashboard():
    parser = build_parser()
    assert parser.parse_args([]).handler is run_dashboard_command
    args = parser.parse_args(["dashboard", "--viewer"])
    assert args.handler is run_dashboard_command and args.viewer


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--monitoring-keymap",
            "ack=r",
            "invalid setting MONITORING_KEYMAP: key 'r' would run both",
        ),
        ("--monitoring-keymap", "launch=l", "invalid setting MONITORING_KEYMAP: unknown command"),
        (
            "--monitoring-theme",
            "sparkly",
            "invalid setting MONITORING_THEME: unknown theme 'sparkly'",
        ),
    ],
)
def test_a_bad_dashboard_setting_is_one_line_and_exit_2(capsys, option, value, message):
    assert main(["dashboard", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


async def test_the_deferred_service_is_connecting_until_the_real_one_is_attached():
    deferred = DeferredService("embedded", "development", viewer=False)
    assert deferred.state.connection is ConnectionState.CONNECTING
    assert deferred.state.database_label == "embedded"
    assert await deferred.list_events(EventFilter()) == []
    with pytest.raises(ActionRefused):
        await deferred.act(1, Verb.ACKNOWLEDGE)
    with pytest.raises(Unavailable):
        await deferred.event_detail(1)

    real = FakeMonitorService()
    changes = deferred.changes()
    first = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    assert not first.done()  # waits for the real service instead of failing
    deferred.attach(real)
    await asyncio.sleep(0)
    real.set_state(real.state)
    assert (await asyncio.wait_for(first, 1)).kind is ChangeKind.STATE
    assert deferred.state is real.state
    assert len(await deferred.list_events(EventFilter())) == 7


async def test_the_dashboard_paints_on_the_deferred_service_and_fills_in_once_it_opens():
    deferred = DeferredService("embedded", "development", viewer=False)
    opened = asyncio.Event()

    async def startup() -> None:
        async with AsyncExitStack():
            await opened.wait()
            deferred.attach(FakeMonitorService())

    app = make_app(deferred, startup=startup)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.monitor_state.connection is ConnectionState.CONNECTING
        opened.set()
        await settle(pilot)
        assert len(event_ids(app)) == 6
