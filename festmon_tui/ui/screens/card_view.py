"""One card at a time: all its events, its ledger with the balance chain, its NFC scans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from festmon_tui.models import CardView, Event, EventStatus, Verb
from festmon_tui.ui.commands import Scope, bindings
from festmon_tui.ui.display import age, component_classes, literal, money, type_label
from festmon_tui.ui.screens.event_screen import copy_to_clipboard, requests
from festmon_tui.ui.screens.record_body import RecordBody, RecordScreen
from festmon_tui.ui.view_state import CardActionRequested

LEDGER_ROWS = 20
SCAN_ROWS = 12

# Which of the card's events a bulk action applies to: acknowledging takes the OPEN ones,
# closing takes every active one (an acknowledged event is resolved as well).
TARGETS: dict[Verb, Callable[[Event], bool]] = {
    Verb.ACKNOWLEDGE: lambda e: e.status is EventStatus.OPEN,
    Verb.RESOLVE: lambda e: e.status.is_active,
    Verb.FALSE_POSITIVE: lambda e: e.status.is_active,
}


class CardBody(RecordBody[CardView]):
    """The card's events, ledger and scans, rendered from one CardView (literal values only)."""

    STYLES = "card-body"
    COMPONENT_CLASSES = component_classes(STYLES, "section", "label", "chain-break")

    def events(self, view: CardView) -> RenderableType:
        if not view.events:
            return Text("No event concerns this card.")
        table = Table(box=None, padding=(0, 1), header_style=self._style("label"), expand=True)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("sev", no_wrap=True)
        table.add_column("type", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("age", justify="right", no_wrap=True)
        table.add_column("amount", justify="right", no_wrap=True)
        table.add_column("rule", overflow="fold")
        for event in view.events:
            table.add_row(
                str(event.event_id),
                event.severity.value,
                type_label(event.event_type),
                event.status.value,
                age(event.last_seen_at or event.detection_timestamp, self.now),
                money(event.affected_amount),
                literal(event.detection_algorithm, max_len=60),
            )
        if view.more_events:
            return Group(table, Text("… older events not shown (search by card for all)"))
        return table

    def ledger(self, view: CardView) -> RenderableType:
        if not view.ledger:
            return Text("No ledger rows for this card.")
        rows = view.ledger[-LEDGER_ROWS:]
        table = self._ledger_table(rows)
        notes = Text(f"card balance now {money(view.current_balance)}")
        hidden = len(view.ledger) - len(rows)
        if hidden:
            notes.append(f" · {hidden} earlier ledger rows not shown")
        return Group(table, notes)

    def render(self) -> RenderableType:
        view = self.record
        if view is None:
            return Text("Loading the card…")
        active = sum(e.status.is_active for e in view.events)
        return Group(
            self._section(f"Events ({len(view.events)}, {active} active)"),
            self.events(view),
            self._section("Ledger — balance chain"),
            self.ledger(view),
            self._section("NFC scans"),
            self._scans(view.scans, empty="No NFC scans for this card.", limit=SCAN_ROWS),
        )


class CardScreen(RecordScreen[CardView]):
    """Opened from any event: all of one card."""

    BINDINGS = bindings(Scope.CARD)
    COMMAND_SCOPES = (Scope.CARD,)
    PART = "card"
    BODY = CardBody

    def __init__(self, card_id: str, timezone: tzinfo, now: datetime, *, viewer: bool) -> None:
        super().__init__(timezone, now, viewer=viewer)
        self.card_id = card_id

    def title_line(self, record: CardView | None) -> Text:
        title = Text("Card ")
        title.append_text(literal(self.card_id))
        if record is not None:
            title.append(f"  · balance {money(record.current_balance)}")
        return title

    def action_copy_card_id(self) -> None:
        copy_to_clipboard(self.app, "card id", self.card_id)

    def action_close_card(self) -> None:
        self.dismiss(None)

    action_acknowledge_card = requests(Verb.ACKNOWLEDGE)
    action_resolve_card = requests(Verb.RESOLVE)
    action_mark_card_false_positive = requests(Verb.FALSE_POSITIVE)

    def request(self, verb: Verb) -> None:
        """One note for all: the service records one audited action per event."""
        targets = [
            e.event_id for e in (self.record.events if self.record else ()) if TARGETS[verb](e)
        ]
        if not targets:
            self.notify(f"Nothing to {verb.label} on this card.", severity="warning", markup=False)
            return
        title = Text(f"{verb.label.capitalize()} {len(targets)} event(s) of card ")
        title.append_text(literal(self.card_id, max_len=60))
        self.post_noted(
            verb, title, lambda note: CardActionRequested(self.card_id, tuple(targets), verb, note)
        )
