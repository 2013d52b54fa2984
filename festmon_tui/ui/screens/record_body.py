"""What the event detail and the card view share.

The screen: a title line over one scrolling body, both filled from the record the app loads
(widget ids `<PART>-title`, `<PART>-scroll`, `<PART>-body`). The body: styles, sections, local
times, the ledger and scan tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any, ClassVar, Generic, TypeVar

from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, Static

from festmon_tui.models import LedgerRow, ScanRow
from festmon_tui.ui.display import local_time
from festmon_tui.ui.ledger import ledger_table, scan_table
from festmon_tui.ui.screens.event_screen import ActionScreen

R = TypeVar("R")


class RecordBody(Widget, Generic[R]):
    """A body rendered from one record; its styles are its component classes `<STYLES>--<name>`."""

    STYLES: ClassVar[str]

    record: reactive[R | None] = reactive(None, layout=True)

    def __init__(self, timezone: tzinfo, now: datetime, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone
        self.now = now

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"{self.STYLES}--{name}", partial=True)

    def _section(self, title: str) -> Text:
        return Text(f"\n{title}", style=self._style("section"))

    def _time(self, value: datetime | None) -> str:
        return local_time(value, self.timezone, self.now)

    def _ledger_table(
        self,
        rows: Sequence[LedgerRow],
        mark: Callable[[LedgerRow], Text | None] = lambda _row: None,
    ) -> Table:
        return ledger_table(
            rows,
            header_style=self._style("label"),
            break_style=self._style("chain-break"),
            time=self._time,
            mark=mark,
        )

    def _scans(self, scans: Sequence[ScanRow], *, empty: str, limit: int) -> RenderableType:
        if not scans:
            return Text(empty)
        return scan_table(scans, header_style=self._style("label"), time=self._time, limit=limit)


class RecordScreen(ActionScreen, Generic[R]):
    """One record under a title line; the app fills `record` and refreshes it on every change."""

    PART: ClassVar[str]
    BODY: ClassVar[type[RecordBody[Any]]]

    record: reactive[R | None] = reactive(None)

    def __init__(self, timezone: tzinfo, now: datetime, *, viewer: bool) -> None:
        super().__init__(viewer=viewer)
        self.timezone = timezone
        self._now = now

    def title_line(self, record: R | None) -> Text:
        """The title: what identifies the record, and more once it is loaded."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield Static(self.title_line(None), id=f"{self.PART}-title")
        with VerticalScroll(id=f"{self.PART}-scroll"):
            yield self.BODY(self.timezone, self._now, id=f"{self.PART}-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#{self.PART}-scroll").focus()
        self.watch_record(self.record)

    def watch_record(self, record: R | None) -> None:
        bodies = self.query(self.BODY)
        if record is None or not bodies:
            return  # on_mount shows a record that arrived before the screen was composed
        bodies.first().record = record
        self.query_one(f"#{self.PART}-title", Static).update(self.title_line(record))
