"""One event: why it is a problem, the card's ledger and balance chain, scans, alerts, history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive

from festmon_tui.models import Event, EventDetail, LedgerRow
from festmon_tui.ui.commands import Scope, bindings
from festmon_tui.ui.display import (
    EMPTY,
    actor_label,
    age,
    component_classes,
    literal,
    money,
    type_label,
)
from festmon_tui.ui.evidence import explain, flags, flatten, raw_json
from festmon_tui.ui.screens.event_screen import EventScreen
from festmon_tui.ui.screens.record_body import RecordBody, RecordScreen

LEDGER_BEFORE = 8
LEDGER_AFTER = 4
SCAN_ROWS = 12
NO_SCANS = "No NFC scans for this card around the event."
# A card id longer than this is not a card id any reader wrote; the rest is marked cut.
ID_MAX_LEN = 500


def ledger_window(event: Event, ledger: Sequence[LedgerRow]) -> tuple[list[LedgerRow], int]:
    """Rows around the event's transaction (else the latest), oldest first, and how many hidden."""
    rows = sorted(ledger, key=lambda r: (r.timestamp, r.log_id))
    index = next(
        (
            i
            for i, r in enumerate(rows)
            if event.transaction_id and r.transaction_id == event.transaction_id
        ),
        None,
    )
    if index is None:
        breaks = [i for i, r in enumerate(rows) if r.chain_ok is False]
        index = breaks[-1] if breaks else len(rows) - 1
    start = max(0, index - LEDGER_BEFORE)
    shown = rows[start : index + LEDGER_AFTER + 1]
    return shown, len(rows) - len(shown)


class DetailBody(RecordBody[EventDetail]):
    """Everything below the title, rendered from one EventDetail (literal values only)."""

    STYLES = "detail-body"
    COMPONENT_CLASSES = component_classes(
        STYLES,
        "section",
        "label",
        "chain-break",
        "this-event",
        "critical",
        "high",
        "medium",
        "low",
        "info",
    )

    show_raw: reactive[bool] = reactive(False, layout=True)

    def severity_style(self, event: Event) -> Style:
        return self._style(event.severity.value.lower())

    def facts(self, event: Event) -> Group:
        # The ids first, whole and on their own lines: an operator copies or compares them
        # with the payment system's, so they wrap at 80 columns instead of being cut.
        ids = Table.grid(padding=(0, 2))
        ids.add_column(style=self._style("label"), no_wrap=True)
        ids.add_column(overflow="fold")
        ids.add_row("card", literal(event.card_id, max_len=ID_MAX_LEN))
        ids.add_row("transaction", literal(event.transaction_id))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style=self._style("label"), no_wrap=True)
        grid.add_column()
        grid.add_column(style=self._style("label"), no_wrap=True)
        grid.add_column()
        ack = literal(event.acknowledged_by, max_len=60, empty="not acknowledged")
        if event.acknowledged_at:
            ack.append(f" at {self._time(event.acknowledged_at)}")
        confidence = EMPTY if event.confidence_score is None else f"{event.confidence_score:.2f}"
        grid.add_row("amount", money(event.affected_amount), "confidence", confidence)
        detected = event.detection_timestamp
        grid.add_row(
            "detected",
            f"{self._time(detected)} ({age(detected, self.now)} ago)",
            "occurrences",
            str(event.occurrence_count),
        )
        grid.add_row("last seen", self._time(event.last_seen_at), "owner", ack)
        grid.add_row(
            "rule", literal(event.detection_algorithm), "resolved", self._time(event.resolved_at)
        )
        if event.resolution_notes:
            grid.add_row(
                "notes", literal(event.resolution_notes, multiline=True, max_len=2000), "", ""
            )
        return Group(ids, grid)

    def ledger(self, detail: EventDetail) -> RenderableType:
        event = detail.event
        if not event.card_id:
            return Text("No card: this event concerns the whole system.")
        if not detail.ledger:
            return Text("No ledger rows for this card around the event.")
        rows, hidden = ledger_window(event, detail.ledger)
        this_event = Text("  ◀ this event", style=self._style("this-event"))
        table = self._ledger_table(
            rows,
            lambda row: (
                this_event
                if event.transaction_id and row.transaction_id == event.transaction_id
                else None
            ),
        )
        notes = Text(f"card balance now {money(detail.current_balance)}")
        last = next(
            (
                r
                for r in sorted(detail.ledger, key=lambda r: (r.timestamp, r.log_id), reverse=True)
                if r.status == "completed" and r.new_balance is not None
            ),
            None,
        )
        if last is not None and detail.current_balance is not None:
            gap = detail.current_balance - (last.new_balance or 0)
            notes.append(f" · last completed row left {money(last.new_balance)}")
            if gap:
                notes.append(f" · unexplained {money(gap)}", style=self._style("chain-break"))
        if hidden:
            notes.append(f" · {hidden} more ledger rows not shown")
        return Group(table, notes)

    def alerts(self, detail: EventDetail) -> RenderableType:
        if not detail.alerts:
            return Text("No alert was raised (alerts are raised for CRITICAL events).")
        lines = []
        for alert in detail.alerts:
            line = Text(f"{alert.alert_level} at {self._time(alert.alert_timestamp)}")
            line.append(f" · escalation level {alert.escalation_level}")
            if alert.acknowledged_at:
                line.append(" · acknowledged by ")
                line.append_text(literal(alert.acknowledged_by, max_len=60))
                line.append(f" at {self._time(alert.acknowledged_at)}")
            else:
                line.append(" · not acknowledged")
            line.append("\n  ")
            line.append_text(literal(alert.alert_message, max_len=300))
            lines.append(line)
        return Group(*lines)

    def history(self, detail: EventDetail) -> RenderableType:
        if not detail.actions:
            return Text("Nobody has acted on this event yet.")
        table = Table(box=None, padding=(0, 1), header_style=self._style("label"))
        for name in ("when", "who", "action", "status", "note"):
            table.add_column(name, no_wrap=name != "note")
        for action in detail.actions:
            change = f"{action.from_status or EMPTY} → {action.to_status or EMPTY}"
            table.add_row(
                self._time(action.acted_at),
                actor_label(action.actor),
                literal(action.action, max_len=20),
                change if action.from_status != action.to_status else EMPTY,
                literal(action.note, multiline=True, max_len=500),
            )
        return table

    def render(self) -> RenderableType:
        detail = self.record
        if detail is None:
            return Text("Loading the event…")
        event = detail.event
        parts: list[RenderableType] = [self.facts(event), self._section("Why this is a problem")]
        parts.extend(explain(event, self.timezone))
        evidence = flatten(event.event_data)
        if evidence:
            parts.append(self._section("Evidence (j shows the raw JSON)"))
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style=self._style("label"), no_wrap=True)
            grid.add_column()
            for key, value in evidence:
                grid.add_row(Text(key), Text(value))
            parts.append(grid)
        set_flags = flags(event.context_data)
        if set_flags:
            parts.append(Text("flags: " + ", ".join(set_flags)))
        if self.show_raw:
            parts.append(self._section("event_data (raw)"))
            parts.append(raw_json(event.event_data))
            parts.append(self._section("context_data (raw)"))
            parts.append(raw_json(event.context_data))
        parts.append(self._section("Ledger of the card — balance chain"))
        parts.append(self.ledger(detail))
        parts.append(self._section("NFC scans of the card"))
        parts.append(self._scans(detail.scans, empty=NO_SCANS, limit=SCAN_ROWS))
        parts.append(self._section("Alert and escalation"))
        parts.append(self.alerts(detail))
        parts.append(self._section("Action history"))
        parts.append(self.history(detail))
        return Group(*parts)


class EventDetailScreen(RecordScreen[EventDetail], EventScreen):
    """Opened from the list: one event."""

    BINDINGS = bindings(Scope.DETAIL)
    COMMAND_SCOPES = (Scope.EVENT, Scope.DETAIL)
    PART = "detail"
    BODY = DetailBody

    def __init__(self, event_id: int, timezone: tzinfo, now: datetime, *, viewer: bool) -> None:
        super().__init__(timezone, now, viewer=viewer)
        self.event_id = event_id

    def title_line(self, record: EventDetail | None) -> Text:
        title = Text(f"Event #{self.event_id}")
        if record is None:
            return title
        event = record.event
        title.append("  ")
        title.append(
            f" {event.severity.value} ", style=self.query_one(DetailBody).severity_style(event)
        )
        title.append(f"  {type_label(event.event_type)} · ")
        title.append_text(literal(event.detection_algorithm, max_len=40))
        title.append(f" · {event.status.value}")
        return title

    def selected_event(self) -> Event | None:
        return self.record.event if self.record else None

    def action_close_detail(self) -> None:
        self.dismiss(None)

    def action_toggle_raw(self) -> None:
        body = self.query_one(DetailBody)
        body.show_raw = not body.show_raw
