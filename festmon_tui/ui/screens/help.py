"""The help screen, generated from the command registry with the keys actually in force."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from festmon_tui.ui.commands import COMMANDS, SCOPE_TITLES, Scope, keys_of

_KEY_NAMES = {"escape": "Esc", "enter": "Enter"}

INTRO = (
    "festmon watches the payment database for money going missing. The list shows active "
    "events, worst first: open one (Enter) to see why it is a problem, acknowledge it (a), "
    "then resolve it or mark it a false positive with a note. Every action is recorded with "
    'who did it. Keys can be remapped with MONITORING_KEYMAP="ack=k,resolve=z".'
)


def help_table(keymap: Mapping[str, str], viewer: bool) -> Group:
    """One small table per scope: key(s), command, what it does, and the id that remaps it."""
    parts: list[RenderableType] = []
    for scope in Scope:
        parts.append(Text(SCOPE_TITLES[scope], style="bold underline"))
        table = Table.grid(padding=(0, 2))
        table.add_column("key", no_wrap=True, min_width=6)
        table.add_column("command", no_wrap=True)
        table.add_column("what it does", ratio=1)
        table.add_column("id", no_wrap=True)
        for command in (c for c in COMMANDS if c.scope is scope):
            keys = " ".join(_KEY_NAMES.get(k, k) for k in keys_of(command, keymap))
            what = Text(command.help)
            if viewer and command.mutating:
                what.append(" (not in viewer mode)", style="italic")
            table.add_row(Text(keys, style="bold"), Text(command.title), what, Text(command.id))
        parts.extend((table, Text("")))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Every command, its key(s) and its remapping id; Escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", id="help_close"),
    ]

    def __init__(self, keymap: Mapping[str, str], *, viewer: bool) -> None:
        super().__init__()
        self.keymap = keymap
        self.viewer = viewer

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(Text("festmon — keys and commands", style="bold"), id="help-title")
            yield Static(Text(INTRO), id="help-intro")
            yield Static(help_table(self.keymap, self.viewer), id="help-table")
            yield Static(Text("Escape, q or ? closes this help."), id="help-hint")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
