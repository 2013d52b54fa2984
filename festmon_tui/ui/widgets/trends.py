"""The trends pane: its one-line summary, and the charts (mounted after the first paint)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from festmon_tui.models import Event, Severity
from festmon_tui.ui.display import count, percent
from festmon_tui.ui.view_state import Trends
from festmon_tui.ui.widgets.filter_bar import fitting
from festmon_tui.ui.widgets.quiet import QuietLines

if TYPE_CHECKING:
    from festmon_tui.ui.widgets.trend_charts import TrendChart


def live_trends(trends: Trends, events: Iterable[Event]) -> Trends:
    """The trends with the events the screen shows that the hourly counts do not have yet.

    The hourly counts come from a materialized view that the health job refreshes with each
    snapshot (every 5 minutes); the list follows live events. Events of the list detected after
    the latest snapshot are added to their hour and severity (issue 17.8: the summary said
    "events HIGH 1" while the list showed 2 new CRITICAL). Without a snapshot the view has not
    been refreshed since it was created: every event of the list in the range is added.
    """
    cutoff = max((s.snapshot_timestamp for s in trends.snapshots), default=None)
    start = (trends.loaded_at or datetime.now(UTC)) - trends.range.span
    added: dict[tuple[datetime, str], int] = defaultdict(int)
    for event in events:
        when = event.detection_timestamp
        if when is None or when < start or (cutoff is not None and when <= cutoff):
            continue
        hour = when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        added[(hour, event.severity.value)] += 1
    if not added:
        return trends
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for hour, severity, n in trends.counts:
        counts[(hour, severity)] += n
    for key, n in added.items():
        counts[key] += n
    merged = tuple((hour, severity, n) for (hour, severity), n in sorted(counts.items()))
    return replace(trends, counts=merged)


def trends_forms(trends: Trends | None) -> list[Text]:
    """The summary from the longest form to the shortest (the pane shows the longest that fits:
    a narrow terminal loses words, not the counts)."""
    if trends is None:
        return [Text("trends: loading…")]
    snapshots = trends.snapshots
    tx: list[str] = []
    short_tx: list[str] = []
    if snapshots:
        latest = max(snapshots, key=lambda s: s.snapshot_timestamp)
        peak = max(s.total_transactions_last_hour for s in snapshots)
        rates = [s.success_rate_percent for s in snapshots if s.success_rate_percent is not None]
        lowest = percent(min(rates)) if rates else "—"
        tx = [
            f"tx/h {count(latest.total_transactions_last_hour)} (peak {count(peak)})",
            f"success min {lowest}",
        ]
        short_tx = [f"tx/h {count(latest.total_transactions_last_hour)}", f"min {lowest}"]
    else:
        tx = short_tx = ["no snapshots"]
    totals: dict[str, int] = defaultdict(int)
    for _hour, severity, n in trends.counts:
        totals[severity] += n
    found = [(s.value, totals[s.value]) for s in Severity if totals.get(s.value)]
    events = " ".join(f"{name} {count(n)}" for name, n in found) or "none"
    short_events = " ".join(f"{name[0]}{count(n)}" for name, n in found) or "none"
    error = [" · not refreshed: database unavailable"] if trends.error else [""]
    head = f"trends {trends.range.value}"
    return [
        Text(" · ".join([head, *tx, f"events detected {events}"]) + error[0]),
        Text(" · ".join([head, *tx, f"events {events}"]) + error[0]),
        Text(
            " · ".join([trends.range.value, *short_tx, f"events {short_events}"])
            + (" · STALE" if trends.error else "")
        ),
    ]


def trends_line(trends: Trends | None) -> Text:
    """The essential line, shown even when the charts do not fit (80x24)."""
    return trends_forms(trends)[0]


class TrendsLine(QuietLines):
    """The summary in the longest form that fits; repainted only when that text changes."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.forms: list[Text] = trends_forms(None)

    def lines(self) -> list[Text]:
        return [fitting(self.forms, self.size.width)]


class TrendsPane(Vertical):
    """The one-line summary, then the two charts side by side."""

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone
        self._shown: tuple[Trends, datetime] | None = None
        self._charts: tuple[TrendChart, ...] = ()

    def compose(self) -> ComposeResult:
        yield TrendsLine(id="trends-line")
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
        line = self.query_one(TrendsLine)
        line.forms = trends_forms(trends)
        line.update_lines()
        for chart in self._charts:
            chart.show(trends, now)
