"""The trend charts: every plotext call of festmon lives here, each chart with its own figure."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, tzinfo

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

from festmon_tui.models import Severity
from festmon_tui.ui.view_state import TrendRange, Trends

_TICKS = 5
log = logging.getLogger(__name__)


def _axis(trend_range: TrendRange) -> tuple[float, str, str]:
    """Seconds per x unit, the unit's name, and the strftime of tick labels."""
    if trend_range is TrendRange.HOUR:
        return 60.0, "min", "%H:%M"
    if trend_range is TrendRange.DAY:
        return 3600.0, "h", "%H:%M"
    return 3600.0, "h", "%a %H:%M"


class TrendChart(PlotextPlot):
    """A chart drawn from one Trends value; redrawn when the data or the theme changes."""

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone
        self._trends: Trends | None = None
        self._now = datetime.now(UTC)
        self._drawn: tuple[Trends, datetime] | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

    def render(self) -> RenderResult:
        try:
            return super().render()
        except (IndexError, ValueError, ZeroDivisionError) as exc:
            # plotext 5 fails on some sizes and data (e.g. a legend taller than the plot area);
            # a chart that cannot be drawn must never take the dashboard down.
            log.debug("chart %s not drawn at %s: %r", self.id, self.size, exc)
            return Text(f"(chart needs more room: {self.size.width}x{self.size.height})")

    def _color(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables["foreground"]
        red, green, blue = Color.parse(value).rgb
        return (red, green, blue)

    def show(self, trends: Trends, now: datetime) -> None:
        """Redrawn only when what it would draw changed (issue 17.1: a chart is most of the
        screen's cells): the data, or the minute its time axis is labelled with."""
        key = (replace(trends, loaded_at=None), now.replace(second=0, microsecond=0))
        if key == self._drawn:
            return
        self._drawn = key
        self._trends, self._now = trends, now
        self._redraw()

    def _x(self, when: datetime, trend_range: TrendRange) -> float:
        # Clamped at 0: a database clock a little ahead of ours must not put points off the chart.
        unit, _, _ = _axis(trend_range)
        return min(0.0, (when - self._now).total_seconds() / unit)

    def _time_ticks(self, trend_range: TrendRange) -> None:
        unit, name, fmt = _axis(trend_range)
        span = trend_range.span.total_seconds() / unit
        positions = [-span + i * span / (_TICKS - 1) for i in range(_TICKS)]
        labels = [
            datetime.fromtimestamp(self._now.timestamp() + p * unit, self.timezone).strftime(fmt)
            for p in positions
        ]
        self.plt.xticks(positions, labels)
        self.plt.xlim(-span, 0)
        self.plt.xlabel(f"local time ({name} per step)")

    def _count_axis(self, peak: float) -> None:
        """A left axis of whole counts from 0 (issue 17.8): never −1…1, never 0.5 events, and
        at zero a flat line at the bottom, not one across the middle."""
        top = max(1, math.ceil(peak))
        step = max(1, math.ceil(top / 4))
        top = step * math.ceil(top / step)
        self.plt.ylim(0, top)
        ticks = [float(t) for t in range(0, top + 1, step)]
        self.plt.yticks(ticks, [f"{int(t):,}".replace(",", " ") for t in ticks])

    def _redraw(self) -> None:
        self.plt.clear_data()
        if self._trends is not None:
            self.draw(self._trends)
        self.refresh()

    def draw(self, trends: Trends) -> None:
        raise NotImplementedError


class TransactionsChart(TrendChart):
    """Transactions in the last hour and success rate, per stored snapshot."""

    def draw(self, trends: Trends) -> None:
        snapshots = sorted(trends.snapshots, key=lambda s: s.snapshot_timestamp)
        self.plt.title(f"transactions/h and success % — {trends.range.value}")
        self._time_ticks(trends.range)
        self._count_axis(max((s.total_transactions_last_hour for s in snapshots), default=0))
        if not snapshots:
            self.plt.title(f"transactions/h and success % — {trends.range.value}: no snapshots")
            return
        xs = [self._x(s.snapshot_timestamp, trends.range) for s in snapshots]
        self.plt.plot(
            xs,
            [s.total_transactions_last_hour for s in snapshots],
            label="tx/h",
            color=self._color("primary"),
            marker="braille",
        )
        rated = [s for s in snapshots if s.success_rate_percent is not None]
        if rated:
            lowest = min(float(s.success_rate_percent or 0) for s in rated)
            # textual_plotext/plotext/_figure.pyi types `yside` as float; plotext takes "right".
            self.plt.ylim(max(0.0, math.floor(lowest) - 1.0), 100.0, yside="right")  # type: ignore[arg-type]
            self.plt.plot(
                [self._x(s.snapshot_timestamp, trends.range) for s in rated],
                [float(s.success_rate_percent or 0) for s in rated],
                label="success %",
                color=self._color("status-healthy"),
                marker="braille",
                yside="right",
            )


class SeverityChart(TrendChart):
    """Events per severity per hour (from the dashboard summary view, 48 h at most)."""

    def draw(self, trends: Trends) -> None:
        self.plt.title(f"events per severity per hour — {trends.range.value}")
        self._time_ticks(trends.range)
        per_severity: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
        for hour, severity, n in trends.counts:
            per_severity[severity][hour] += n
        self._count_axis(
            max((n for hours in per_severity.values() for n in hours.values()), default=0)
        )
        if not per_severity:
            self.plt.title(f"events per severity per hour — {trends.range.value}: none")
            return
        for severity in Severity:
            hours = per_severity.get(severity.value)
            if not hours:
                continue
            ordered = sorted(hours)
            self.plt.plot(
                [self._x(h, trends.range) for h in ordered],
                [hours[h] for h in ordered],
                label=severity.value,
                color=self._color(f"sev-{severity.value.lower()}"),
                marker="braille",
            )
