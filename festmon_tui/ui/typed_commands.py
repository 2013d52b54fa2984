"""Commands typed into the palette as k9s users type them: `ack 42`, `type race`, `card 04A1…`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from textual.message import Message

from festmon_tui.models import EventFilter, EventType, Verb
from festmon_tui.ui.display import clean
from festmon_tui.ui.filters import SEVERITY_STEPS, STATUS_STEPS, Step, with_search
from festmon_tui.ui.view_state import CardChosen, EventChosen, FiltersChanged, LifecycleRequested

T = TypeVar("T")

VERBS = {
    "ack": Verb.ACKNOWLEDGE,
    "acknowledge": Verb.ACKNOWLEDGE,
    "unack": Verb.UNACKNOWLEDGE,
    "unacknowledge": Verb.UNACKNOWLEDGE,
    "resolve": Verb.RESOLVE,
    "fp": Verb.FALSE_POSITIVE,
    "false-positive": Verb.FALSE_POSITIVE,
    "note": Verb.NOTE,
}
TYPE_WORDS = {
    "tx": EventType.TRANSACTION_FAILURE,
    "failure": EventType.TRANSACTION_FAILURE,
    "balance": EventType.BALANCE_DISCREPANCY,
    "nfc": EventType.DUPLICATE_NFC,
    "duplicate": EventType.DUPLICATE_NFC,
    "race": EventType.RACE_CONDITION,
    "health": EventType.SYSTEM_HEALTH,
}
USAGE = (
    "ack|unack 42 · resolve|fp|note 42 <note> · open 42 · card <id> · "
    "type race|tx|balance|nfc · sev high · status all · search <text>"
)


@dataclass(frozen=True)
class Typed:
    """What a typed line means: the palette shows `label`; choosing it posts `message`."""

    label: str
    message: Message | None = None  # None: incomplete; `label` says what is missing
    mutating: bool = False


def _event_id(word: str) -> int | None:
    digits = word.removeprefix("#")
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 19 else None


def _step(steps: Sequence[Step[T]], word: str) -> tuple[str, frozenset[T]] | None:
    for label, value in steps:
        if label.lstrip("≥").lower() == word.lower():
            return label, value
    return None


def _event_type(word: str) -> frozenset[EventType] | None:
    word = word.lower()
    if word == "all":
        return frozenset()
    if word in TYPE_WORDS:
        return frozenset({TYPE_WORDS[word]})
    found = {t for t in EventType if t.value.startswith(word) or word in t.value.split("_")}
    return frozenset(found) if len(found) == 1 else None


def parse(text: str, current: EventFilter) -> Typed | None:
    """The command a line names, or None when its first word is no typed command."""
    head, _, rest = text.strip().partition(" ")
    head, rest = head.lower(), rest.strip()
    if head in VERBS:
        return _lifecycle(VERBS[head], rest)
    if head in ("open", "event"):
        event_id = _event_id(rest)
        if event_id is None:
            return Typed(f"{head} <event id>: which event?")
        return Typed(f"open event #{event_id}", EventChosen(event_id))
    if head == "card":
        if not rest:
            return Typed("card <card id>: which card?")
        return Typed(
            f"card {clean(rest, max_len=60)}: every event, ledger and scan", CardChosen(rest)
        )
    if head == "type":
        types = _event_type(rest)
        if types is None:
            return Typed("type race|tx|balance|nfc|health|all: which type?")
        shown = ", ".join(sorted(types)) or "all"
        return Typed(f"show type {shown}", FiltersChanged(replace(current, event_types=types)))
    if head in ("sev", "severity"):
        severity = _step(SEVERITY_STEPS, rest)
        if severity is None:
            return Typed("sev critical|high|medium|low|all: which one?")
        wanted = replace(current, severities=severity[1])
        return Typed(f"show severity {severity[0]}", FiltersChanged(wanted))
    if head == "status":
        status = _step(STATUS_STEPS, rest)
        if status is None:
            return Typed("status active|open|investigating|closed|all: which one?")
        return Typed(
            f"show status {status[0]}", FiltersChanged(replace(current, statuses=status[1]))
        )
    if head in ("search", "find"):
        wanted = with_search(current, rest)
        shown = f'"{clean(rest, max_len=40)}"' if rest else "(cleared)"
        return Typed(f"search {shown}: ids, notes and action history", FiltersChanged(wanted))
    return None


def _lifecycle(verb: Verb, rest: str) -> Typed:
    word, _, note = rest.partition(" ")
    event_id = _event_id(word)
    if event_id is None:
        return Typed(f"{verb.label} <event id>{' <note>' if verb.needs_note else ''}: which event?")
    note = note.strip()
    if verb.needs_note and not note:
        return Typed(f"{verb.label} #{event_id} <note>: a note is required", mutating=True)
    shown = f" — {clean(note, max_len=40)}" if note else ""
    message = LifecycleRequested(event_id, verb, note or None)
    return Typed(f"{verb.label} event #{event_id}{shown}", message, mutating=True)
