"""Which id of the event to copy: e, c or t; the app copies it (OSC 52) and says what it was."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from festmon_tui.models import Event
from festmon_tui.ui.display import literal

# (key, what it is, how to read it from the event)
CHOICES = (
    ("e", "event id", lambda e: str(e.event_id)),
    ("c", "card id", lambda e: e.card_id),
    ("t", "transaction id", lambda e: None if e.transaction_id is None else str(e.transaction_id)),
)


def copyable(event: Event) -> list[tuple[str, str, str]]:
    """(key, name, value) for each id the event has."""
    found = ((key, name, read(event)) for key, name, read in CHOICES)
    return [(key, name, value) for key, name, value in found if value]


class CopyPrompt(ModalScreen[tuple[str, str] | None]):
    """Returns (name, value) of the id chosen, or None; Escape cancels."""

    BINDINGS = [
        Binding("e", "choose('e')", "Event id", id="copy_event"),
        Binding("c", "choose('c')", "Card id", id="copy_card"),
        Binding("t", "choose('t')", "Transaction id", id="copy_transaction"),
        Binding("escape,q", "choose('')", "Cancel", id="copy_cancel"),
    ]

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.choices = {key: (name, value) for key, name, value in copyable(event)}

    def compose(self) -> ComposeResult:
        with Vertical(id="copy-dialog"):
            yield Static(Text("Copy to the clipboard"), id="copy-title")
            for key, (name, value) in self.choices.items():
                line = Text(f"{key}  {name}  ")
                line.append_text(literal(value, max_len=80))
                yield Static(line, classes="copy-choice")
            yield Static(Text("Escape cancels"), id="copy-hint")

    def action_choose(self, key: str) -> None:
        self.dismiss(self.choices.get(key))
