"""Driving the dashboard with Pilot: the real app on a fake service, waiting on workers."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from textual.content import Content
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from festmon_tui.cli.event_output import render_csv, render_json
from festmon_tui.service.api import MonitorService
from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.config import DashboardConfig
from festmon_tui.ui.widgets.event_table import EventTable
from tests.ui.fake_service import NOW, FakeMonitorService

# Workers that run for the app's whole life; everything else finishes and can be waited on.
_LIFELONG = {"changes"}


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until every short-lived worker has finished and the screen has caught up."""
    app = pilot.app
    for _ in range(50):
        await pilot.pause()
        busy = [w for w in app.workers if w.group not in _LIFELONG and w.is_running]
        if not busy:
            await pilot.pause()
            return
        await app.workers.wait_for_complete(busy)
    raise AssertionError("workers never settled")


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let the app run until `condition` holds (timers, live updates); fail after timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)
    await pilot.pause()


def make_app(
    service: MonitorService | None = None,
    *,
    startup: Callable[[], Awaitable[None]] | None = None,
    **config: Any,
) -> FestmonApp:
    """The real app on a fake service with a fixed clock (so ages and times are stable)."""
    config.setdefault("renderers", {"csv": render_csv, "json": render_json})
    return FestmonApp(
        service or FakeMonitorService(),
        DashboardConfig(**config),
        startup=startup,
        clock=lambda: NOW,
    )


def table_rows(app: FestmonApp) -> list[list[str]]:
    """The event table as plain strings, top to bottom."""
    table = app.screen.query_one("#events", EventTable)
    return [[cell.plain for cell in table.row_cells(i)] for i in range(table.row_count)]


def event_ids(app: FestmonApp) -> list[int]:
    return [int(row[1]) for row in table_rows(app)]


def screen_text(widget: Widget, width: int = 120) -> str:
    """What a widget renders, as plain text (markup never interpreted, styles dropped)."""
    renderable = widget.content if isinstance(widget, Static) else widget.render()
    if isinstance(renderable, str):
        return renderable
    if isinstance(renderable, Content):
        return renderable.plain
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def notifications(app: FestmonApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
