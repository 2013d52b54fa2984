"""A live change reloads the event list at once; a burst of changes is folded into one more."""

from __future__ import annotations

import asyncio

from festmon_tui.models import Event, EventFilter, Severity
from tests.ui.fake_service import FakeMonitorService, make_event
from tests.ui.pilot import event_ids, make_app, settle, until

# Long enough that a reload waiting for the coalescing delay could never pass these tests.
COALESCE_S = 600.0


async def test_a_new_event_is_listed_without_waiting_for_the_coalescing_delay() -> None:
    service = FakeMonitorService()
    app = make_app(service, reload_coalesce_s=COALESCE_S)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        service.insert(make_event(80, severity=Severity.CRITICAL))
        await until(pilot, lambda: 80 in event_ids(app))


async def test_a_burst_of_changes_is_one_load_now_and_at_most_one_after_the_delay() -> None:
    service = FakeMonitorService()
    app = make_app(service, reload_coalesce_s=COALESCE_S)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        service.insert(make_event(81, severity=Severity.HIGH))
        await until(pilot, lambda: 81 in event_ids(app))
        await settle(pilot)
        loads = service.calls.count("list_events")
        for event_id in (82, 83, 84):
            service.insert(make_event(event_id, severity=Severity.HIGH))
        await settle(pilot)
        # Within the delay of the first reload: folded into one reload at the delay's end.
        assert service.calls.count("list_events") == loads
        assert app.pacer.pending


class SlowList(FakeMonitorService):
    """list_events waits at a gate while `hold` is set (a slow database under load)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def list_events(self, event_filter: EventFilter) -> list[Event]:
        found = await super().list_events(event_filter)
        await self.gate.wait()
        return found


async def test_a_change_during_a_slow_load_is_listed_when_that_load_ends() -> None:
    service = SlowList()
    # No auto reload for the test's life: only the change itself can bring the event in.
    app = make_app(service, reload_coalesce_s=0.01, reload_interval_s=600)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        service.gate.clear()
        loads = service.calls.count("list_events")
        service.insert(make_event(90, severity=Severity.HIGH))
        await until(pilot, lambda: service.calls.count("list_events") > loads)  # now held
        service.insert(make_event(91, severity=Severity.CRITICAL))
        await until(pilot, lambda: 91 in app.news.announced)  # the change reached the app
        service.gate.set()
        await until(pilot, lambda: {90, 91} <= set(event_ids(app)))
