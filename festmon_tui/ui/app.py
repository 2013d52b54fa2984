"""The festmon dashboard app: holds the latest data, runs every call to the service in a worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType

from textual import on, work
from textual.app import App
from textual.notifications import Notification, Notify
from textual.reactive import reactive
from textual.screen import Screen

from festmon_tui.models import (
    Change,
    ChangeKind,
    ConnectionState,
    Event,
    EventFilter,
    MonitorState,
    Severity,
)
from festmon_tui.presentation import plural
from festmon_tui.service.api import ActionRefused, MonitorService
from festmon_tui.ui.commands import MUTATING_ACTIONS, Scope, bindings
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.display import clean, type_label
from festmon_tui.ui.export import renderer, write_export
from festmon_tui.ui.filters import DEFAULT_FILTER
from festmon_tui.ui.palette import RegistryCommands
from festmon_tui.ui.screens.dashboard import DashboardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.help import HelpScreen
from festmon_tui.ui.themes import (
    DEFAULT_THEME,
    fallback_variables,
    load_themes,
    next_theme,
    stylesheet_path,
)
from festmon_tui.ui.view_state import (
    CyclePhase,
    CycleProgress,
    EventChosen,
    EventWindow,
    ExportRequested,
    FiltersChanged,
    Lifecycle,
    LifecycleRequested,
    TrendRange,
    TrendRangeChanged,
    Trends,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
EXPORT_LIMIT = 1_000_000
ANNOUNCE_GATHER_S = 0.5
RELOAD_RETRY_S = 0.05  # a reload asked for while the list is loading waits this long, again


def utc_now() -> datetime:
    return datetime.now(UTC)


class FestmonApp(App[int]):
    """Data down (reactive attributes the screens watch), operator intentions up (messages)."""

    TITLE = "festmon"
    BINDINGS = bindings(Scope.APP)
    COMMANDS = App.COMMANDS | {RegistryCommands}

    monitor_state: reactive[MonitorState] = reactive(
        lambda: MonitorState(ConnectionState.CONNECTING, "", ""), init=False
    )
    # The dashboard shows a new window through its watcher (the list and the filter bar repaint
    # themselves); repainting the whole screen too (charts, panes) cost two full compositor
    # passes per filter change.
    window: reactive[EventWindow] = reactive(EventWindow, init=False, repaint=False)
    trends: reactive[Trends | None] = reactive(None, init=False)
    cycle: reactive[CycleProgress] = reactive(CycleProgress, init=False)
    now: reactive[datetime] = reactive(utc_now, init=False)
    paused: reactive[bool] = reactive(False, init=False)
    missed: reactive[int] = reactive(0, init=False)

    def __init__(
        self,
        service: MonitorService,
        config: DashboardConfig | None = None,
        *,
        startup: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(css_path=[stylesheet_path()])
        self.service = service
        self.config = config or DashboardConfig()
        self.clock = clock
        self._startup = startup
        self.started_at = clock()
        self.trend_range = TrendRange.DAY
        self.announced: set[int] = set()
        self._news: list[str] = []
        # The CRITICAL toast on screen and what it lists: later news joins it, never stacks.
        self._news_toast: Notification | None = None
        self._news_shown: list[str] = []
        self._trends_snapshot: int | None = None
        self._reload_pending = False
        self._reloaded_at = -float("inf")  # time.monotonic() of the last reload asked for
        for theme in load_themes():
            self.register_theme(theme)
        self.theme = self.config.theme if self.get_theme(self.config.theme) else DEFAULT_THEME
        self.set_keymap(dict(self.config.keymap))
        self.set_reactive(FestmonApp.now, self.started_at)
        self.set_reactive(FestmonApp.monitor_state, service.state)
        self.set_reactive(FestmonApp.window, EventWindow(event_filter=DEFAULT_FILTER))

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return fallback_variables(self.current_theme)

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(viewer=self.config.viewer)

    def on_mount(self) -> None:
        if not self.is_headless:
            self._handle_signals(asyncio.get_running_loop())
        self.set_interval(1.0, self._tick)
        self.set_interval(self.config.reload_interval_s, self._auto_reload)
        self.set_interval(self.config.trends_interval_s, self._auto_trends)
        # After the first frame: opening the service imports asyncpg and the scheduler (~0.25 s
        # of CPU) and starts servers; the panes are on screen before any of that.
        self.call_after_refresh(self.start_service)

    def _handle_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGTERM and SIGHUP end the app; a hang-up must not deadlock Textual on the way out.

        A hung-up terminal gets SIGHUP *and* SIGCONT. Textual resumes application mode on
        SIGCONT and its writer thread dies on the first EIO, after which the main thread blocks
        for ever on the writer's full queue. So on SIGHUP the terminal is swapped for /dev/null
        first (the handler runs before SIGCONT's: signals are handled in number order), and
        SIGCONT only resumes a terminal that is still there.
        """
        loop.add_signal_handler(signal.SIGTERM, self._exit_on, signal.SIGTERM)

        def hang_up(signum: int, _frame: FrameType | None) -> None:
            _detach_terminal()
            with suppress(RuntimeError):  # the loop is already closed: nothing left to stop
                loop.call_soon_threadsafe(self._exit_on, signum)

        resume = signal.getsignal(signal.SIGCONT)

        def resume_if_terminal(signum: int, frame: FrameType | None) -> None:
            if callable(resume) and _terminal_alive():
                resume(signum, frame)

        signal.signal(signal.SIGHUP, hang_up)
        signal.signal(signal.SIGCONT, resume_if_terminal)

    def _exit_on(self, signum: int) -> None:
        """Quit with the shell's code for the signal (129 for SIGHUP, 143 for SIGTERM)."""
        self.exit(return_code=128 + signum)

    # ---- the service: start, follow its changes, keep the state fresh ---------------------

    @work(exclusive=True, group="service", exit_on_error=False)
    async def start_service(self) -> None:
        if self._startup is not None:
            try:
                await self._startup()
            except Exception as exc:  # shown, then the dashboard keeps trying through the service
                log.exception("startup failed")
                self.notify(clean(str(exc)), title="Startup failed", severity="error", markup=False)
        if not self.is_headless:
            # Everything alive now (modules, Textual's DOM and stylesheets, the service) lives as
            # long as the dashboard: out of the collector's full passes, which otherwise walk it
            # all again every few reloads (60-250 ms pauses measured at 100 000 events, the
            # slowest key presses). Headless (tests) the process outlives many apps: not frozen.
            gc.freeze()
        self.monitor_state = self.service.state
        self.load_events()
        self.load_trends()
        self.follow_changes()

    @work(exclusive=True, group="changes", exit_on_error=False)
    async def follow_changes(self) -> None:
        try:
            async for change in self.service.changes():
                self._on_change(change)
        except Exception:
            log.exception("the change stream failed; resubscribing")
            self.set_timer(2.0, self.follow_changes)

    def _on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.EVENT_INSERTED and change.severity == Severity.CRITICAL:
            self.announce(change.event_id, change.event_type)
        if self.paused:
            self.missed += change.kind is ChangeKind.EVENT_INSERTED
            return
        if change.kind is ChangeKind.STATE:
            self.monitor_state = self.service.state
        self.request_reload()

    def request_reload(self) -> None:
        """Reload at once, then fold the changes of the next reload_coalesce_s into one reload.

        A new event is on screen one query after its NOTIFY; a burst of changes costs at most
        one more reload. Never cancels a load that is running.
        """
        if self._reload_pending:
            return
        since = time.monotonic() - self._reloaded_at
        if since >= self.config.reload_coalesce_s:
            self._reload_now()
            return
        self._reload_pending = True
        self.set_timer(self.config.reload_coalesce_s - since, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_pending = False
        if any(w.is_running for w in self.workers if w.group == "events"):
            # Never cancel a running load (a slow database would never finish one); ask again
            # as soon as it may be done. Changes until then fold into this reload.
            self._reload_pending = True
            self.set_timer(RELOAD_RETRY_S, self._reload_now)
            return
        self._reloaded_at = time.monotonic()
        self.load_events()
        detail = self._open_detail()
        if detail is not None:
            self.load_detail(detail)

    def _open_detail(self, event_id: int | None = None) -> EventDetailScreen | None:
        """The detail screen on top (of that event), if any; None while the app shuts down."""
        top = self.screen_stack[-1] if self.screen_stack else None
        if isinstance(top, EventDetailScreen) and event_id in (None, top.event_id):
            return top
        return None

    def _tick(self) -> None:
        self.now = self.clock()
        if not self.paused:
            self.monitor_state = self.service.state
        if not self.is_headless and not _terminal_alive():  # the tty went away without SIGHUP
            _detach_terminal()
            self._exit_on(signal.SIGHUP)

    def watch_monitor_state(self, state: MonitorState) -> None:
        # A new health snapshot is a new point on the trend charts: fetch it now.
        snapshot = state.health.snapshot_id if state.health else None
        if snapshot != self._trends_snapshot and not self.paused:
            self._trends_snapshot = snapshot
            self.load_trends()

    def _auto_reload(self) -> None:
        if not self.paused:
            self.request_reload()

    def _auto_trends(self) -> None:
        if not self.paused:
            self.load_trends()

    def announce(self, event_id: int | None, event_type: str | None) -> None:
        """A new CRITICAL event is announced once; a burst of them in one notification."""
        if event_id is None or event_id in self.announced:
            return
        self.announced.add(event_id)
        what = type_label(event_type) if event_type else "event"
        if not self._news:
            self.set_timer(ANNOUNCE_GATHER_S, self._flush_news)
        self._news.append(f"#{event_id} {what}")

    def _flush_news(self) -> None:
        news, self._news = self._news, []
        previous = self._news_toast
        if previous is not None and previous in self._notifications:
            news = self._news_shown + news
            self._unnotify(previous, refresh=False)
        title = "New CRITICAL event" if len(news) == 1 else f"{len(news)} new CRITICAL events"
        shown = ", ".join(news[:6]) + (f" and {len(news) - 6} more" if len(news) > 6 else "")
        toast = Notification(
            f"{shown} — in the list (s shows CRITICAL only)",
            title,
            "error",
            15,
            markup=False,
        )
        self._news_toast, self._news_shown = toast, news
        self.post_message(Notify(toast))
        if self.config.bell:
            self.bell()

    def _announce_from(self, events: list[Event]) -> None:
        for event in events:
            if event.severity is Severity.CRITICAL and event.detection_timestamp >= self.started_at:
                self.announce(event.event_id, event.event_type)

    # ---- loading ---------------------------------------------------------------------------

    @work(exclusive=True, group="events", exit_on_error=False)
    async def load_events(self, event_filter: EventFilter | None = None) -> None:
        wanted = event_filter or self.window.event_filter
        try:
            events = await self.service.list_events(replace(wanted, limit=self.config.window + 1))
        except Exception as exc:
            log.warning("loading events failed: %s", exc)
            self.window = replace(self.window, event_filter=wanted, error=clean(str(exc)))
            return
        limit = self.config.window
        self.window = EventWindow(tuple(events[:limit]), wanted, self.clock(), len(events) > limit)
        self._announce_from(events)

    @work(exclusive=True, group="trends", exit_on_error=False)
    async def load_trends(self) -> None:
        trend_range = self.trend_range
        since = self.clock() - trend_range.span
        try:
            snapshots = await self.service.health_history(since)
            counts = await self.service.event_counts_by_hour(since)
        except Exception as exc:
            log.warning("loading trends failed: %s", exc)
            old = self.trends if self.trends and self.trends.range is trend_range else None
            self.trends = replace(old or Trends(trend_range), error=clean(str(exc)))
            return
        self.trends = Trends(trend_range, tuple(snapshots), tuple(counts), self.clock())

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load_detail(self, screen: EventDetailScreen) -> None:
        try:
            screen.detail = await self.service.event_detail(screen.event_id)
        except Exception as exc:
            self.notify(
                clean(str(exc)), title="Could not load the event", severity="error", markup=False
            )

    # ---- what the operator asked for -------------------------------------------------------

    @on(FiltersChanged)
    def _filters_changed(self, message: FiltersChanged) -> None:
        self.window = replace(self.window, event_filter=message.event_filter)
        self.load_events(message.event_filter)

    @on(TrendRangeChanged)
    def _range_changed(self, message: TrendRangeChanged) -> None:
        self.trend_range = message.trend_range
        self.load_trends()

    @on(EventChosen)
    def _event_chosen(self, message: EventChosen) -> None:
        screen = EventDetailScreen(
            message.event_id, self.config.timezone, self.now, viewer=self.config.viewer
        )
        self.push_screen(screen)
        self.load_detail(screen)

    @on(LifecycleRequested)
    def _lifecycle_requested(self, message: LifecycleRequested) -> None:
        self.apply_lifecycle(message.event_id, message.verb, message.note)

    # Not exclusive: acknowledging one event must never cancel a write still running for another.
    @work(group="lifecycle", exit_on_error=False)
    async def apply_lifecycle(self, event_id: int, verb: Lifecycle, note: str | None) -> None:
        service = self.service
        try:
            if verb is Lifecycle.ACKNOWLEDGE:
                await service.acknowledge(event_id, note)
            elif verb is Lifecycle.UNACKNOWLEDGE:
                await service.unacknowledge(event_id, note)
            elif verb is Lifecycle.RESOLVE:
                await service.resolve(event_id, note or "")
            elif verb is Lifecycle.FALSE_POSITIVE:
                await service.mark_false_positive(event_id, note or "")
            else:
                await service.add_note(event_id, note or "")
        except ActionRefused as exc:
            self.notify(
                clean(str(exc)), title=f"#{event_id} refused", severity="error", markup=False
            )
            return
        except Exception as exc:
            self.notify(
                clean(str(exc)),
                title=f"#{event_id} not {verb.done}",
                severity="error",
                markup=False,
            )
            return
        self.notify(f"Event #{event_id} {verb.done}.", markup=False)
        self.load_events()
        detail = self._open_detail(event_id)
        if detail is not None:
            self.load_detail(detail)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.config.viewer and action in MUTATING_ACTIONS)

    def action_run_cycle(self) -> None:
        if self.config.viewer:
            self.notify("Read-only viewer: cannot run a cycle.", severity="warning")
        elif self.cycle.phase is CyclePhase.RUNNING:
            self.notify("A cycle is already running.", severity="warning")
        else:
            self.run_cycle()

    @work(exclusive=True, group="cycle", exit_on_error=False)
    async def run_cycle(self) -> None:
        started = self.clock()
        self.cycle = CycleProgress(CyclePhase.RUNNING, started)
        try:
            result = await self.service.run_cycle_now()
        except Exception as exc:
            self.cycle = CycleProgress(CyclePhase.FAILED, started, error=clean(str(exc)))
            self.notify(clean(str(exc)), title="Cycle failed", severity="error", markup=False)
            return
        self.cycle = CycleProgress(CyclePhase.DONE, started, result)
        outcome = "done" if result.success else "done with errors"
        self.notify(
            f"Cycle {outcome}: {plural(result.total_events_created, 'new event')} "
            f"in {result.cycle_duration_seconds:.2f} s.",
            severity="information" if result.success else "warning",
            markup=False,
        )
        self.monitor_state = self.service.state
        self.load_events()

    @on(ExportRequested)
    def _export_requested(self, message: ExportRequested) -> None:
        self.export_events(message.fmt)

    @work(exclusive=True, group="export", exit_on_error=False)
    async def export_events(self, fmt: str) -> None:
        render = renderer(fmt, csv_safe=self.config.csv_safe)
        if render is None:
            self.notify(f"No {fmt} export in this build.", severity="warning", markup=False)
            return
        wanted = replace(self.window.event_filter, limit=EXPORT_LIMIT)
        try:
            events = await self.service.list_events(wanted)
            directory, now = self.config.export_dir, self.clock()
            path = await asyncio.to_thread(write_export, render(events), fmt, directory, now)
        except Exception as exc:
            self.notify(clean(str(exc)), title="Export failed", severity="error", markup=False)
            return
        self.notify(
            f"{plural(len(events), 'event')} written to {clean(str(path))}",
            title="Exported",
            markup=False,
        )

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.notify("Display paused; detection keeps running. p resumes.", markup=False)
            return
        self.missed = 0
        self.monitor_state = self.service.state
        self.load_events()
        self.load_trends()

    def action_reload_data(self) -> None:
        self.monitor_state = self.service.state
        self.load_events()
        self.load_trends()

    def action_show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config.keymap, viewer=self.config.viewer))

    def action_switch_theme(self) -> None:
        self.theme = next_theme(self.theme)
        self.notify(f"Theme: {self.theme}", markup=False, timeout=2)


def _detach_terminal() -> None:
    """Point stdin/stdout/stderr at /dev/null: writes to a dead terminal then cost nothing."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _terminal_alive() -> bool:
    """False once the controlling terminal is gone (SSH dropped): stdin stops being a tty."""
    try:
        return sys.__stdin__ is not None and os.isatty(sys.__stdin__.fileno())
    except (OSError, ValueError):
        return False
