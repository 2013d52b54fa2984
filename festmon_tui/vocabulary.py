"""The words the command line and the filter bar share for types, statuses and severities."""

from __future__ import annotations

from typing import Any

from festmon_tui.models import EventStatus, EventType, Severity

# One vocabulary for the command line and the dashboard (issue 15.6): the CLI's --type,
# --status and --severity take these words, and every word the dashboard's filter bar shows
# ("tx failure", "active", "≥HIGH") is one of them once normalised by `vocabulary_word`.


def vocabulary_word(text: str) -> str:
    """The word as the tables spell it: lower case, dashes for spaces and underscores, and
    "≥HIGH" / ">=high" as "high+"."""
    word = text.strip().lower().replace("_", "-").replace(" ", "-")
    for prefix in ("≥", ">="):
        if word.startswith(prefix):
            word = word.removeprefix(prefix) + "+"
    return word


def parse_words(text: str, table: dict[str, frozenset[Any]], what: str) -> frozenset[Any]:
    """The values a comma-separated list of words names; ValueError listing the words."""
    values: set[Any] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        word = vocabulary_word(part)
        if word not in table:
            raise ValueError(f"unknown {what} {part!r} (one of: {', '.join(table)})")
        values |= table[word]
    return frozenset(values)


EVENT_TYPE_WORDS: dict[str, EventType] = {
    "tx-failure": EventType.TRANSACTION_FAILURE,
    "balance": EventType.BALANCE_DISCREPANCY,
    "duplicate-nfc": EventType.DUPLICATE_NFC,
    "race": EventType.RACE_CONDITION,
    "system": EventType.SYSTEM_HEALTH,
}

STATUS_WORDS: dict[str, frozenset[EventStatus]] = {
    "active": frozenset({EventStatus.OPEN, EventStatus.INVESTIGATING}),
    "all": frozenset(EventStatus),
    **{vocabulary_word(s.value): frozenset({s}) for s in EventStatus},
    "closed": frozenset({EventStatus.RESOLVED, EventStatus.FALSE_POSITIVE}),
}

SEVERITY_WORDS: dict[str, frozenset[Severity]] = {
    "all": frozenset(Severity),
    **{vocabulary_word(s.value): frozenset({s}) for s in Severity},
    **{
        f"{vocabulary_word(floor.value)}+": frozenset(
            s for s in Severity if s.weight >= floor.weight
        )
        for floor in (Severity.HIGH, Severity.MEDIUM, Severity.LOW)
    },
}


def event_type_words() -> dict[str, frozenset[EventType]]:
    """--type's words: festmon's short words, and each type's full name as an alias."""
    words = {"all": frozenset(EventType)}
    words.update({word: frozenset({t}) for word, t in EVENT_TYPE_WORDS.items()})
    words.update({vocabulary_word(t.value): frozenset({t}) for t in EventType})
    return words
