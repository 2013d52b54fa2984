"""The festmon dashboard app: holds the latest data, runs every call to the service in a worker."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.notifications import Notification, Notify
from textual.reactive import reactive
from textual.screen import Screen

from festmon_tui.models import (
    Change,
    ChangeKind,
    ConnectionState,
    EventFilter,
    MonitorState,
    Severity,
)
from festmon_tui.service.api import MonitorService
from festmon_tui.ui.commands import Scope, bindings, offered
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.filters import DEFAULT_FILTER
from festmon_tui.ui.news import CriticalNews
from festmon_tui.ui.pacing import ReloadPacer
from festmon_tui.ui.palette import RegistryCommands, TypedCommands
from festmon_tui.ui.screens.card_view import CardScreen
from festmon_tui.ui.screens.dashboard import DashboardScreen
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.help import HelpScreen
from festmon_tui.ui.screens.quit_prompt import QuitPrompt, quit_or_ask
from festmon_tui.ui.service_path import ServicePath, SubView, Toast
from festmon_tui.ui.terminal import exit_if_terminal_lost, handle_signals
from festmon_tui.ui.themes import (
    DEFAULT_THEME,
    fallback_variables,
    load_themes,
    next_theme,
    stylesheet_path,
)
from festmon_tui.ui.view_state import (
    CardActionRequested,
    CardChosen,
    CyclePhase,
    CycleProgress,
    EventChosen,
    EventWindow,
    ExportRequested,
    FiltersChanged,
    LifecycleRequested,
    TrendRange,
    TrendRangeChanged,
    Trends,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class FestmonApp(App[int]):
    """Data down (reactive attributes the screens watch), operator intentions up (messages)."""

    TITLE = "festmon"
    BINDINGS = [
        *bindings(Scope.APP),
        Binding("ctrl+c,ctrl+q", "confirm_quit", "Quit", show=False, priority=True),
    ]
    COMMANDS = App.COMMANDS | {RegistryCommands, TypedCommands}

    # None of these repaints the screen (an App reactive repaints every widget, each second for
    # `now`: issue 17.1); the panes that show them watch them and repaint what changed.
    monitor_state: reactive[MonitorState] = reactive(
        lambda: MonitorState(ConnectionState.CONNECTING, "", ""), init=False, repaint=False
    )
    # The dashboard shows a new window through its watcher (the list and the filter bar repaint
    # themselves); repainting the whole screen too (charts, panes) cost two full compositor
    # passes per filter change.
    window: reactive[EventWindow] = reactive(EventWindow, init=False, repaint=False)
    trends: reactive[Trends | None] = reactive(None, init=False, repaint=False)
    cycle: reactive[CycleProgress] = reactive(CycleProgress, init=False, repaint=False)
    now: reactive[datetime] = reactive(utc_now, init=False, repaint=False)
    paused: reactive[bool] = reactive(False, init=False, repaint=False)
    missed: reactive[int] = reactive(0, init=False, repaint=False)

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
        self.path = ServicePath(service, self.config, clock)
        self._startup = startup
        self.started_at = clock()
        self.trend_range = TrendRange.DAY
        self.news = CriticalNews(
            self.started_at, self._show_news, self.clear_notifications, self.set_timer
        )
        self.pacer = ReloadPacer(
            self.config.reload_coalesce_s, self._reload, self._loading_events, self.set_timer
        )
        self._trends_snapshot: int | None = None
        # Every notification raised, for the status line of a short terminal (Textual keeps its
        # own list private); expired ones are dropped as new ones come.
        self.notices: list[Notification] = []
        for theme in load_themes():
            self.register_theme(theme)
        self.theme = self.config.theme if self.get_theme(self.config.theme) else DEFAULT_THEME
        self.set_keymap(dict(self.config.keymap))
        self.set_reactive(FestmonApp.now, self.started_at)
        self.set_reactive(FestmonApp.monitor_state, service.state)
        self.set_reactive(FestmonApp.window, EventWindow(event_filter=DEFAULT_FILTER))

    def on_notify(self, message: Notify) -> None:
        # Runs next to Textual's own handler (which shows the toast): both see every Notify.
        self.notices = [n for n in self.notices if not n.has_expired]
        self.notices.append(message.notification)

    def clear_notifications(self) -> None:
        self.notices.clear()
        super().clear_notifications()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return fallback_variables(self.current_theme)

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(viewer=self.config.viewer)

    def on_mount(self) -> None:
        if not self.is_headless:
            handle_signals(asyncio.get_running_loop(), self._exit_on)
        self.set_interval(1.0, self._tick)
        self.set_interval(self.config.reload_interval_s, self._auto_reload)
        self.set_interval(self.config.trends_interval_s, self._auto_trends)
        # After the first frame: opening the service imports asyncpg and the scheduler (~0.25 s
        # of CPU) and starts servers; the panes are on screen before any of that.
        self.call_after_refresh(self.start_service)

    def _exit_on(self, signum: int) -> None:
        """Quit with the shell's code for the signal (129 for SIGHUP, 143 for SIGTERM)."""
        self.exit(return_code=128 + signum)

    def toast(self, toast: Toast) -> None:
        self.notify(toast.message, title=toast.title, severity=toast.severity, markup=False)

    def _show_news(self, message: str, title: str, timeout_s: float) -> None:
        self.notify(message, title=title, severity="error", timeout=timeout_s, markup=False)
        if self.config.bell:
            self.bell()

    # ---- the service: start, follow its changes, keep the state fresh ---------------------

    @work(exclusive=True, group="service", exit_on_error=False)
    async def start_service(self) -> None:
        if toast := await self.path.start(self._startup):
            self.toast(toast)
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

    # A worker method, not run_worker(coroutine): a quit before it starts leaves no coroutine.
    @work(group="changes", exit_on_error=False)
    async def follow_changes(self) -> None:
        await self.path.follow(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.EVENT_INSERTED and change.severity == Severity.CRITICAL:
            self.news.announce(change.event_id, change.event_type)
        if self.paused:
            self.missed += change.kind is ChangeKind.EVENT_INSERTED
            return
        if change.kind in (ChangeKind.STATE, ChangeKind.MONITOR):
            before, self.monitor_state = self.monitor_state, self.service.state
            back = before.connection is not self.monitor_state.connection
            if change.kind is ChangeKind.MONITOR and not back and self.window.error is None:
                return  # health, jobs or leader moved, not the events: one reload per change
        self.pacer.request()

    def _loading_events(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "events")

    def _reload(self) -> None:
        """The list, and the detail or card view on top if any (none while shutting down)."""
        self.load_events()
        top = self.screen_stack[-1] if self.screen_stack else None
        if isinstance(top, EventDetailScreen | CardScreen):
            self.load_view(top)

    def _tick(self) -> None:
        self.now = self.clock()
        if not self.paused:
            self.monitor_state = self.service.state
        if not self.is_headless:
            exit_if_terminal_lost(self._exit_on)

    def watch_monitor_state(self, state: MonitorState) -> None:
        # A new health snapshot is a new point on the trend charts: fetch it now.
        snapshot = state.health.snapshot_id if state.health else None
        if snapshot != self._trends_snapshot and not self.paused:
            self._trends_snapshot = snapshot
            self.load_trends()

    def _auto_reload(self) -> None:
        if not self.paused:
            self.pacer.request()

    def _auto_trends(self) -> None:
        if not self.paused:
            self.load_trends()

    # ---- loading: one worker group each, the calls themselves in the service path ---------

    @work(exclusive=True, group="events", exit_on_error=False)
    async def load_events(self, event_filter: EventFilter | None = None) -> None:
        wanted = event_filter or self.window.event_filter
        self.window = window = await self.path.window(wanted, self.window)
        self.news.announce_new(window.events)

    @work(exclusive=True, group="trends", exit_on_error=False)
    async def load_trends(self) -> None:
        self.trends = await self.path.trends(self.trend_range, self.trends)

    def load_view(self, screen: SubView) -> None:
        """The detail or card view's data; one load at a time per kind of view."""
        self.run_worker(
            self._fill(screen), group=type(screen).__name__, exclusive=True, exit_on_error=False
        )

    async def _fill(self, screen: SubView) -> None:
        if toast := await self.path.fill(screen):
            self.toast(toast)

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
    @on(CardChosen)
    def _view_chosen(self, message: EventChosen | CardChosen) -> None:
        tz, now, viewer = self.config.timezone, self.now, self.config.viewer
        screen: SubView
        if isinstance(message, EventChosen):
            screen = EventDetailScreen(message.event_id, tz, now, viewer=viewer)
        else:
            screen = CardScreen(message.card_id, tz, now, viewer=viewer)
        self.push_screen(screen)
        self.load_view(screen)

    # Not exclusive: acknowledging one event must never cancel a write still running for another.
    @on(LifecycleRequested)
    @work(group="lifecycle", exit_on_error=False)
    async def _lifecycle_requested(self, message: LifecycleRequested) -> None:
        self.toast(await self.path.act(message.event_id, message.verb, message.note))

    @on(CardActionRequested)
    @work(group="lifecycle", exit_on_error=False)
    async def _card_action_requested(self, message: CardActionRequested) -> None:
        m = message
        self.toast(await self.path.act_on_card(m.card_id, m.event_ids, m.verb, m.note))

    @on(ExportRequested)
    @work(exclusive=True, group="export", exit_on_error=False)
    async def _export_requested(self, message: ExportRequested) -> None:
        self.toast(await self.path.export(self.window.event_filter, message.fmt))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return offered(action, viewer=self.config.viewer)

    def action_run_cycle(self) -> None:
        if self.cycle.phase is CyclePhase.RUNNING:
            self.notify("A cycle is already running.", severity="warning")
        else:
            self.run_cycle()

    @work(exclusive=True, group="cycle", exit_on_error=False)
    async def run_cycle(self) -> None:
        started = self.clock()
        self.cycle = CycleProgress(CyclePhase.RUNNING, started)
        self.cycle, toast = await self.path.cycle(started)
        self.toast(toast)
        self.monitor_state = self.service.state

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.notify("Display paused; detection keeps running. p resumes.", markup=False)
            return
        self.missed = 0
        self.action_reload_data()

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

    # ---- quitting: back from a sub-view, ask before the scheduler stops -------------------

    async def action_quit(self) -> None:
        """q: back from a sub-view (k9s, less); on the dashboard, quit (asking if leading)."""
        if len(self.screen_stack) > 1:
            self.screen.dismiss()
        else:
            self.confirm_quit()

    def action_confirm_quit(self) -> None:
        """Ctrl+C, Ctrl+Q: quit from anywhere, asking first if this process leads; twice quits."""
        if isinstance(self.screen, QuitPrompt):
            self.screen.dismiss(True)
        else:
            self.confirm_quit()

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def confirm_quit(self) -> None:
        quit_or_ask(self, await self.path.handover(self.monitor_state))
