"""A small dialog asking for the note a resolution (or a plain note) must carry."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class NotePrompt(ModalScreen[str | None]):
    """Returns the note, or None when cancelled; an empty note is refused, not sent."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note_cancel")]

    def __init__(self, title: Text, *, required: bool = True) -> None:
        super().__init__()
        self.prompt_title = title
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical(id="note-dialog"):
            yield Static(self.prompt_title, id="note-title")
            yield Input(placeholder="what was found / done (Enter to save)", id="note-input")
            yield Static(Text("Enter saves · Escape cancels"), id="note-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        note = event.value.strip()
        if self.required and not note:
            self.query_one("#note-hint", Static).update(
                Text("A note is required — say what was found or done. Escape cancels.")
            )
            self.query_one("#note-dialog").add_class("-refused")
            return
        self.dismiss(note or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
