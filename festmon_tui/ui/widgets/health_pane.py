"""Health: the status word and why, the snapshot's metrics, and sparklines of recent snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from festmon_tui.models import ConnectionState, HealthSnapshot, HealthStatus, MonitorState
from festmon_tui.ui.display import (
    component_classes,
    count,
    literal,
    local_time,
    money,
    pack,
    percent,
)
from festmon_tui.ui.widgets.quiet import StateLines, coarse_age


class HealthSummary(StateLines):
    """The status line first (the essential one), then the metrics, packed to the width."""

    STYLES = "health-summary"
    COMPONENT_CLASSES = component_classes(
        STYLES, "healthy", "warning", "critical", "unknown", "label", "stale"
    )

    def _metric(self, label: str, value: str) -> Text:
        return Text.assemble((label + " ", self._style("label")), value)

    def status_line(self) -> Text:
        state = self.state
        health = state.health if state else None
        status = state.health_status if state else HealthStatus.UNKNOWN
        line = Text(f" {status.value} ", style=self._style(status.value.lower()))
        if state is not None and state.connection is ConnectionState.UNAVAILABLE:
            # Next to the word it qualifies: a narrow pane cuts the reasons, never this.
            line.append(" (last known)", style=self._style("stale"))
        reasons = state.health_reasons if state else ()
        if reasons:
            line.append(" — ")
            line.append_text(literal("; ".join(reasons), max_len=300))
        elif health is None:
            line.append(" — no health snapshot yet")
        elif status is HealthStatus.HEALTHY:
            line.append(" — no active critical or high events, rates above 99 %")
        return line

    def metrics(self, health: HealthSnapshot) -> list[Text]:
        m = self._metric
        processing = " / ".join(
            "—" if v is None else str(v)
            for v in (
                health.avg_processing_time_ms,
                health.p95_processing_time_ms,
                health.max_processing_time_ms,
            )
        )
        state = self.state
        active = []
        if state is not None and state.active_events is not None:
            worst = (
                f"{count(state.active_critical_events)} CRITICAL,"
                f" {count(state.active_high_events)} HIGH"
            )
            active.append(m("active events", f"{count(state.active_events)} ({worst})"))
        return [
            *active,
            m("tx/h", count(health.total_transactions_last_hour)),
            m("success", percent(health.success_rate_percent)),
            m("failed/h", count(health.failed_transactions_last_hour)),
            m("NFC/h", count(health.total_nfc_scans_last_hour)),
            m("NFC ok", percent(health.nfc_success_rate_percent)),
            m("dup NFC", count(health.duplicate_nfc_scans_last_hour)),
            m("ms avg/p95/max", processing),
            m("cards", count(health.active_cards_count)),
            m("balance", money(health.total_system_balance)),
            m("events/h", count(health.monitoring_events_last_hour)),
            m("critical/h", count(health.critical_events_last_hour)),
            m(
                "snapshot",
                f"{local_time(health.snapshot_timestamp, self.timezone, self.now)}"
                f" ({coarse_age(health.snapshot_timestamp, self.now)} old)",
            ),
        ]

    def lines(self) -> list[Text]:
        width = max(20, self.size.width)
        health = self.state.health if self.state else None
        if health is None:
            return [self.status_line()]
        body = pack(self.metrics(health), width, separator=" · ")
        return [self.status_line(), *body.split("\n")]


class HealthPane(Vertical):
    """The health pane: summary and two sparklines (transactions, success rate)."""

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone

    def compose(self) -> ComposeResult:
        yield HealthSummary(self.timezone, id="health-summary")
        with Horizontal(id="health-sparks"):
            yield Label("tx/h ", classes="spark-label")
            yield Sparkline([], id="spark-transactions")
            yield Label(" success ", classes="spark-label")
            yield Sparkline([], id="spark-success")

    def show(self, state: MonitorState, now: datetime) -> None:
        summary = self.query_one(HealthSummary)
        summary.state = state
        summary.now = now

    def tick(self, now: datetime) -> None:
        self.query_one(HealthSummary).now = now

    def show_history(self, snapshots: Sequence[HealthSnapshot]) -> None:
        ordered = sorted(snapshots, key=lambda s: s.snapshot_timestamp)
        # Sparkline repaints on every assignment: only new data is given to it (issue 17.1).
        transactions = [float(s.total_transactions_last_hour) for s in ordered]
        success = [
            float(s.success_rate_percent) for s in ordered if s.success_rate_percent is not None
        ]
        # One point, or only zeros, would draw a bar of full height (Textual scales min..max):
        # a flat baseline says "nothing yet" (issue 17.8).
        if len(transactions) < 2 or not any(transactions):
            transactions = []
        if len(success) < 2:
            success = []
        for spark, data in (("#spark-transactions", transactions), ("#spark-success", success)):
            widget = self.query_one(spark, Sparkline)
            if list(widget.data or []) != data:
                widget.data = data
