"""What the list and the detail screens share: the lifecycle keys for the event in view."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import App
from textual.message import Message
from textual.screen import Screen

from festmon_tui.models import Event, Verb
from festmon_tui.ui.commands import Scope, bindings, offered
from festmon_tui.ui.display import clean
from festmon_tui.ui.screens.copy_prompt import CopyPrompt
from festmon_tui.ui.screens.note_prompt import NotePrompt
from festmon_tui.ui.view_state import CardChosen, LifecycleRequested


class ActionScreen(Screen[None]):
    """Offers the lifecycle keys unless viewer; an action whose verb needs a note asks for it."""

    def __init__(self, *, viewer: bool) -> None:
        super().__init__()
        self.viewer = viewer

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return offered(action, viewer=self.viewer)

    def request(self, verb: Verb) -> None:
        raise NotImplementedError

    def post_noted(self, verb: Verb, title: Text, message: Callable[[str | None], Message]) -> None:
        """Post `message(None)` now, or `message(note)` once the note the verb needs is written."""
        if not verb.needs_note:
            self.post_message(message(None))
            return

        def send(note: str | None) -> None:
            if note:
                self.post_message(message(note))

        self.app.push_screen(NotePrompt(title, required=True), send)


def requests(verb: Verb) -> Callable[[ActionScreen], None]:
    """The action method of a key that requests `verb` (`action_x = requests(Verb.X)`)."""

    def action(screen: ActionScreen) -> None:
        screen.request(verb)

    return action


class EventScreen(ActionScreen):
    """Lifecycle actions ask for a note when one is required, then post LifecycleRequested."""

    BINDINGS = bindings(Scope.EVENT)
    COMMAND_SCOPES: tuple[Scope, ...] = (Scope.EVENT,)

    def selected_event(self) -> Event | None:
        raise NotImplementedError

    action_acknowledge_event = requests(Verb.ACKNOWLEDGE)
    action_unacknowledge_event = requests(Verb.UNACKNOWLEDGE)
    action_resolve_event = requests(Verb.RESOLVE)
    action_mark_false_positive = requests(Verb.FALSE_POSITIVE)
    action_add_note = requests(Verb.NOTE)

    def action_copy_id(self) -> None:
        event = self.selected_event()
        if event is None:
            self.notify("No event selected.", severity="warning")
            return

        def copy(chosen: tuple[str, str] | None) -> None:
            if chosen is not None:
                copy_to_clipboard(self.app, *chosen)

        self.app.push_screen(CopyPrompt(event), copy)

    def action_open_card(self) -> None:
        event = self.selected_event()
        if event is None:
            self.notify("No event selected.", severity="warning")
        elif not event.card_id:
            self.notify("This event concerns no card (the whole system).", markup=False)
        else:
            self.post_message(CardChosen(event.card_id))

    def request(self, verb: Verb) -> None:
        event = self.selected_event()
        if event is None:
            self.notify("No event selected.", severity="warning")
            return
        card = f" (card {clean(event.card_id, max_len=30)})" if event.card_id else ""
        title = Text(f"{verb.label.capitalize()} event #{event.event_id}{card}")
        title.append(f"\n{event.severity.value} {clean(event.detection_algorithm, max_len=40)}")
        self.post_noted(verb, title, lambda note: LifecycleRequested(event.event_id, verb, note))


def copy_to_clipboard(app: App[object], name: str, value: str) -> None:
    """The exact value to the terminal's clipboard (OSC 52, base64: nothing in it is run)."""
    app.copy_to_clipboard(value)
    app.notify(f"Copied {name} {clean(value, max_len=60)} to the clipboard.", markup=False)
