"""Every call the dashboard makes to the service, each failure turned into what to show."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from textual.notifications import SeverityLevel

from festmon_tui.models import Change, EventFilter, Handover, MonitorState, Verb
from festmon_tui.presentation import plural
from festmon_tui.service.api import ActionRefused, MonitorService
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.display import clean
from festmon_tui.ui.export import renderer, write_export
from festmon_tui.ui.screens.card_view import CardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.view_state import CyclePhase, CycleProgress, EventWindow, TrendRange, Trends

log = logging.getLogger(__name__)

SubView = EventDetailScreen | CardScreen

EXPORT_LIMIT = 1_000_000
RESUBSCRIBE_S = 2.0


@dataclass(frozen=True)
class Toast:
    """What to tell the operator about an outcome (plain text, never markup)."""

    message: str
    title: str = ""
    severity: SeverityLevel = "information"


class ServicePath:
    """Loads and actions over the service; holds no screen, only the service and the clock."""

    def __init__(
        self, service: MonitorService, config: DashboardConfig, clock: Callable[[], datetime]
    ) -> None:
        self.service = service
        self.config = config
        self.clock = clock

    async def start(self, startup: Callable[[], Awaitable[None]] | None) -> Toast | None:
        """Open the real service (after the first paint); a failure is shown, never fatal."""
        if startup is None:
            return None
        try:
            await startup()
        except Exception as exc:  # shown, then the dashboard keeps trying through the service
            log.exception("startup failed")
            return Toast(clean(str(exc)), "Startup failed", "error")
        return None

    async def follow(self, on_change: Callable[[Change], None]) -> None:
        """Every live change, for as long as the service publishes; a broken stream resubscribes."""
        while True:
            try:
                async for change in self.service.changes():
                    on_change(change)
                return
            except Exception:
                log.exception("the change stream failed; resubscribing")
                await asyncio.sleep(RESUBSCRIBE_S)

    async def window(self, wanted: EventFilter, previous: EventWindow) -> EventWindow:
        """The events of `wanted` (at most config.window), or the previous ones with the error."""
        limit = self.config.window
        try:
            events = await self.service.list_events(replace(wanted, limit=limit + 1))
        except Exception as exc:
            log.warning("loading events failed: %s", exc)
            return replace(previous, event_filter=wanted, error=clean(str(exc)))
        return EventWindow(tuple(events[:limit]), wanted, self.clock(), len(events) > limit)

    async def trends(self, trend_range: TrendRange, previous: Trends | None) -> Trends:
        since = self.clock() - trend_range.span
        try:
            snapshots = await self.service.health_history(since)
            counts = await self.service.event_counts_by_hour(since)
        except Exception as exc:
            log.warning("loading trends failed: %s", exc)
            old = previous if previous and previous.range is trend_range else None
            return replace(old or Trends(trend_range), error=clean(str(exc)))
        return Trends(trend_range, tuple(snapshots), tuple(counts), self.clock())

    async def fill(self, screen: SubView) -> Toast | None:
        """Load what a detail or card view shows into it; what went wrong, if anything."""
        try:
            if isinstance(screen, CardScreen):
                screen.record = await self.service.card(screen.card_id)
            else:
                screen.record = await self.service.event_detail(screen.event_id)
        except Exception as exc:
            what = "the card" if isinstance(screen, CardScreen) else "the event"
            return Toast(clean(str(exc)), f"Could not load {what}", "error")
        return None

    async def act(self, event_id: int, verb: Verb, note: str | None) -> Toast:
        """One action; the list and the views follow from the change it causes, not from here."""
        try:
            await self.service.act(event_id, verb, note)
        except ActionRefused as exc:
            return Toast(clean(str(exc)), f"#{event_id} refused", "error")
        except Exception as exc:
            return Toast(clean(str(exc)), f"#{event_id} not {verb.done}", "error")
        return Toast(f"Event #{event_id} {verb.done}.")

    async def act_on_card(
        self, card_id: str, event_ids: tuple[int, ...], verb: Verb, note: str | None
    ) -> Toast:
        """One audited action per event, one note for all; one summary, not one toast each."""
        refused: list[str] = []
        for event_id in event_ids:
            try:
                await self.service.act(event_id, verb, note)
            except Exception as exc:
                refused.append(f"#{event_id}: {clean(str(exc), max_len=80)}")
        done = len(event_ids) - len(refused)
        summary = f"Card {clean(card_id, max_len=40)}: {done} event(s) {verb.done}."
        if refused:
            summary += f" {len(refused)} refused — " + "; ".join(refused[:3])
            return Toast(summary, severity="warning")
        return Toast(summary)

    async def cycle(self, started: datetime) -> tuple[CycleProgress, Toast]:
        try:
            result = await self.service.run_cycle_now()
        except Exception as exc:
            error = clean(str(exc))
            return CycleProgress(CyclePhase.FAILED, started, error=error), Toast(
                error, "Cycle failed", "error"
            )
        outcome = "done" if result.success else "done with errors"
        toast = Toast(
            f"Cycle {outcome}: {plural(result.total_events_created, 'new event')} "
            f"in {result.cycle_duration_seconds:.2f} s.",
            severity="information" if result.success else "warning",
        )
        return CycleProgress(CyclePhase.DONE, started, result), toast

    async def export(self, event_filter: EventFilter, fmt: str) -> Toast:
        render = renderer(fmt, csv_safe=self.config.csv_safe)
        if render is None:
            return Toast(f"No {fmt} export in this build.", severity="warning")
        try:
            events = await self.service.list_events(replace(event_filter, limit=EXPORT_LIMIT))
            directory, now = self.config.export_dir, self.clock()
            path = await asyncio.to_thread(write_export, render(events), fmt, directory, now)
        except Exception as exc:
            return Toast(clean(str(exc)), "Export failed", "error")
        return Toast(f"{plural(len(events), 'event')} written to {clean(str(path))}", "Exported")

    async def handover(self, state: MonitorState) -> Handover:
        """Who takes over if this process quits; with the database away, what the state knows."""
        try:
            return await self.service.handover()
        except Exception as exc:
            log.warning("could not tell who takes over: %s", exc)
            return Handover(leads=state.leader is not None and state.leader.is_self)
