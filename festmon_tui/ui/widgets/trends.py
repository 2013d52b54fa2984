"""The trends pane: its one-line summary, and the charts (mounted after the first paint)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from festmon_tui.models import Severity
from festmon_tui.ui.display import count, percent
from festmon_tui.ui.view_state import Trends

if TYPE_CHECKING:
    from festmon_tui.ui.widgets.trend_charts import TrendChart


def trends_line(trends: Trends | None) -> Text:
    """The essential line, shown even when the charts do not fit (80x24)."""
    if trends is None:
        return Text("trends: loading…")
    line = Text(f"trends {trends.range.value}")
    snapshots = trends.snapshots
    if snapshots:
        latest = max(snapshots, key=lambda s: s.snapshot_timestamp)
        peak = max(s.total_transactions_last_hour for s in snapshots)
        rates = [s.success_rate_percent for s in snapshots if s.success_rate_percent is not None]
        line.append(f" · tx/h {count(latest.total_transactions_last_hour)} (peak {count(peak)})")
        line.append(f" · success min {percent(min(rates)) if rates else '—'}")
    else:
        line.append(" · no snapshots")
    totals: dict[str, int] = defaultdict(int)
    for _hour, severity, n in trends.counts:
        totals[severity] += n
    events = " ".join(f"{s.value} {totals[s.value]}" for s in Severity if totals.get(s.value))
    line.append(f" · events {events or 'none'}")
    if trends.error:
        line.append(" · not refreshed: database unavailable")
    return line


class TrendsPane(Vertical):
    """The one-line summary, then the two charts side by side."""

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone
        self._shown: tuple[Trends, datetime] | None = None
        self._charts: tuple[TrendChart, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(trends_line(None), id="trends-line")
        yield Horizontal(id="trends-charts")

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_charts)

    def _mount_charts(self) -> None:
        # plotext takes ~0.2 s to import: the first paint does not wait for it.
        from festmon_tui.ui.widgets.trend_charts import SeverityChart, TransactionsChart

        self._charts = (
            TransactionsChart(self.timezone, id="chart-transactions"),
            SeverityChart(self.timezone, id="chart-severity"),
        )
        self.query_one("#trends-charts").mount(*self._charts)
        if self._shown is not None:
            for chart in self._charts:
                chart.show(*self._shown)

    def show(self, trends: Trends, now: datetime) -> None:
        self._shown = (trends, now)
        line = trends_line(trends)
        static = self.query_one("#trends-line", Static)
        if static.content != line:  # Static repaints on every update (issue 17.1)
            static.update(line)
        for chart in self._charts:
            chart.show(trends, now)
