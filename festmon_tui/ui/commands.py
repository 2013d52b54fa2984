"""The one registry of dashboard commands: key bindings, footer, help and palette all read it."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from textual.binding import Binding, BindingType


class Scope(StrEnum):
    """Where a command applies: everywhere, on any event (list or detail), or one screen."""

    APP = "app"
    EVENT = "event"
    DASHBOARD = "dashboard"
    DETAIL = "detail"
    CARD = "card"


SCOPE_TITLES = {
    Scope.APP: "Everywhere",
    Scope.EVENT: "The selected event (list or detail)",
    Scope.DASHBOARD: "Event list",
    Scope.DETAIL: "Event detail",
    Scope.CARD: "Card view (every event of one card)",
}


@dataclass(frozen=True)
class Command:
    """One thing the operator can do; `id` is the name used to remap its key."""

    id: str
    key: str
    action: str
    title: str
    help: str
    mutating: bool = False
    footer: bool = False
    scope: Scope = field(kw_only=True)


# One constructor per scope, so each command is one row of the table:
# (id, key, action, title, help[, mutating[, footer]]).
_APP = partial(Command, scope=Scope.APP)
_EVENT = partial(Command, scope=Scope.EVENT)
_DASHBOARD = partial(Command, scope=Scope.DASHBOARD)
_DETAIL = partial(Command, scope=Scope.DETAIL)
_CARD = partial(Command, scope=Scope.CARD)

COMMANDS: tuple[Command, ...] = (
    _APP("help", "?", "show_help", "Help", "Show every key and command", False, True),
    _APP("cycle", "d", "run_cycle", "Run cycle", "Run one detection cycle now", True, True),
    _APP(
        "pause",
        "p",
        "toggle_pause",
        "Pause",
        "Freeze the display (detection keeps running)",
        False,
        True,
    ),
    _APP("palette", ":", "command_palette", "Commands", "Open the command palette"),
    _APP("theme", "T", "switch_theme", "Theme", "Next theme (dark, light, contrast)"),
    _APP("reload", "R", "reload_data", "Reload", "Reload everything now"),
    _APP(
        "quit",
        "q",
        "quit",
        "Quit",
        "Leave a view; on the list, quit (Ctrl+C quits from anywhere)",
        False,
        True,
    ),
    _EVENT("ack", "a", "acknowledge_event", "Ack", "Acknowledge (take ownership)", True, True),
    _EVENT("unack", "u", "unacknowledge_event", "Unack", "Return to OPEN, release", True),
    _EVENT("resolve", "r", "resolve_event", "Resolve", "Resolve (note required)", True, True),
    _EVENT(
        "false_positive",
        "x",
        "mark_false_positive",
        "False positive",
        "Mark as false positive (note required)",
        True,
    ),
    _EVENT("note", "n", "add_note", "Note", "Add a note to the action history", True),
    _EVENT(
        "copy",
        "y",
        "copy_id",
        "Copy",
        "Copy the event id, card id or transaction id to the clipboard",
    ),
    _EVENT(
        "card", "C", "open_card", "Card", "Every event, ledger row and scan of this event's card"
    ),
    _DASHBOARD("open", "enter", "open_event", "Open", "Open the selected event"),
    _DASHBOARD(
        "search", "/", "search_events", "Search", "Search card or transaction id", False, True
    ),
    _DASHBOARD(
        "severity",
        "s",
        "cycle_severity",
        "Severity",
        "Filter: all, CRITICAL, ≥HIGH, ≥MEDIUM, ≥LOW",
        False,
        True,
    ),
    _DASHBOARD("type", "t", "cycle_type", "Type", "Filter by event type"),
    _DASHBOARD(
        "status", "v", "cycle_status", "Status", "Filter: active, all, OPEN, INVESTIGATING, closed"
    ),
    _DASHBOARD("clear", "c", "clear_filters", "Clear", "Clear filters and search"),
    _DASHBOARD("sort", "o", "cycle_sort", "Sort", "Next sort column"),
    _DASHBOARD(
        "storms",
        "w",
        "toggle_storms",
        "Storms",
        "Event storms: one line per rule, or all their events",
    ),
    _DASHBOARD("reverse", "O", "reverse_sort", "Reverse", "Reverse the sort order"),
    _DASHBOARD("range", "g", "cycle_range", "Range", "Trends range: 1 h, 24 h, 7 d"),
    _DASHBOARD("export_csv", "e", "export_csv", "Export CSV", "Filtered events to a CSV file"),
    _DASHBOARD("export_json", "E", "export_json", "Export JSON", "Filtered events to a JSON file"),
    _DETAIL("back", "escape", "close_detail", "Back", "Back to the list", False, True),
    _DETAIL("raw", "j", "toggle_raw", "Raw JSON", "Show or hide the raw evidence"),
    _CARD("card_back", "escape", "close_card", "Back", "Back (q too)", False, True),
    _CARD("card_copy", "y", "copy_card_id", "Copy", "Copy the card id"),
    _CARD(
        "card_ack",
        "a",
        "acknowledge_card",
        "Ack all",
        "Acknowledge every OPEN event of the card",
        True,
        True,
    ),
    _CARD(
        "card_resolve",
        "r",
        "resolve_card",
        "Resolve all",
        "Resolve every active event of the card, one note for all",
        True,
        True,
    ),
    _CARD(
        "card_false_positive",
        "x",
        "mark_card_false_positive",
        "False positive all",
        "Mark every active event of the card a false positive, one note for all",
        True,
    ),
)

COMMANDS_BY_ID = {command.id: command for command in COMMANDS}
COMMANDS_BY_ACTION = {command.action: command for command in COMMANDS}
MUTATING_ACTIONS = frozenset(command.action for command in COMMANDS if command.mutating)


def offered(action: str, *, viewer: bool) -> bool:
    """Whether keys, footer and palette offer this action; the service is what refuses it."""
    return not (viewer and action in MUTATING_ACTIONS)


# The scopes whose keys are live together; a remapped key must not clash inside one of these.
_ACTIVE_TOGETHER = (
    (Scope.APP, Scope.EVENT, Scope.DASHBOARD),
    (Scope.APP, Scope.EVENT, Scope.DETAIL),
    (Scope.APP, Scope.CARD),
)


class KeymapError(ValueError):
    """MONITORING_KEYMAP names an unknown command, a bad key, or makes two commands clash."""


def bindings(*scopes: Scope) -> list[BindingType]:
    """Textual bindings for the commands of these scopes; the binding id is the command id."""
    return [
        Binding(c.key, c.action, c.title, show=c.footer, id=c.id, tooltip=c.help)
        for c in COMMANDS
        if c.scope in scopes
    ]


def parse_keymap(text: str) -> dict[str, str]:
    """'ack=k,resolve=R' → {'ack': 'k', 'resolve': 'R'}; an id given twice gets both keys."""
    keymap: dict[str, list[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        command_id, sep, key = (piece.strip() for piece in item.partition("="))
        if not sep or not key:
            raise KeymapError(f"{item!r} is not command=key")
        if command_id not in COMMANDS_BY_ID:
            known = ", ".join(sorted(COMMANDS_BY_ID))
            raise KeymapError(f"unknown command {command_id!r} (known: {known})")
        if key == ",":
            raise KeymapError("',' separates entries and cannot be a key")
        if "=" in key:
            raise KeymapError(f"{item!r} has more than one '='")
        keymap.setdefault(command_id, []).append(key)
    result = {command_id: ",".join(keys) for command_id, keys in keymap.items()}
    _check_clashes(result)
    return result


def keys_of(command: Command, keymap: Mapping[str, str]) -> list[str]:
    return keymap.get(command.id, command.key).split(",")


def _key_name(key: str) -> str:
    """'?' and 'question_mark' are one key (Textual's long names for punctuation)."""
    if len(key) == 1 and not key.isalnum():
        try:
            return unicodedata.name(key).lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            return key
    return key


def _check_clashes(keymap: dict[str, str]) -> None:
    for scopes in _ACTIVE_TOGETHER:
        owner: dict[str, str] = {}
        for command in (c for c in COMMANDS if c.scope in scopes):
            for key in map(_key_name, keys_of(command, keymap)):
                if key in owner:
                    raise KeymapError(f"key {key!r} would run both {owner[key]} and {command.id}")
                owner[key] = command.id
