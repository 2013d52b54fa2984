"""What the event detail's body and the card view's body share: styles, sections, local times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import ClassVar

from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from festmon_tui.models import LedgerRow, ScanRow
from festmon_tui.ui.display import local_time
from festmon_tui.ui.ledger import ledger_table, scan_table


class RecordBody(Widget):
    """A body rendered from one record; its styles are its component classes `<STYLES>--<name>`."""

    STYLES: ClassVar[str]

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
