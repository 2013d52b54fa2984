"""Asked before the process that runs the scheduler quits: what happens to detection then."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from festmon_tui.models import Handover


class QuitPrompt(ModalScreen[bool]):
    """y or Enter (or Ctrl+C again, the app's key) quits; n, Escape or q stays, as in htop."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Quit", id="quit_yes"),
        Binding("n,escape,q", "answer(False)", "Stay", id="quit_no"),
    ]

    def __init__(self, handover: Handover) -> None:
        super().__init__()
        self.handover = handover

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static(Text("Quit festmon? It runs the detection scheduler."), id="quit-title")
            yield Static(Text(self.handover.consequence.capitalize() + "."), id="quit-consequence")
            yield Static(Text("y / Enter quits · n / Escape stays"), id="quit-hint")

    def action_answer(self, quit_now: bool) -> None:
        self.dismiss(quit_now)


def quit_or_ask(app: App[int], handover: Handover) -> None:
    """A process that does not lead the scheduler quits at once; the leader asks first."""
    if not handover.leads:
        app.exit()
        return

    def answered(quit_now: bool | None) -> None:
        if quit_now:
            app.exit()

    app.push_screen(QuitPrompt(handover), answered)
