"""How values are shown: database strings as literal text, money, ages and local times."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from rich.style import Style
from rich.text import Text

from festmon_tui.models import EventType
from festmon_tui.presentation import escape

EMPTY = "—"

TYPE_LABELS = {
    EventType.TRANSACTION_FAILURE: "tx failure",
    EventType.BALANCE_DISCREPANCY: "balance",
    EventType.DUPLICATE_NFC: "duplicate NFC",
    EventType.RACE_CONDITION: "race",
    EventType.SYSTEM_HEALTH: "system",
}


def component_classes(prefix: str, *names: str) -> set[str]:
    """A widget's Textual component classes `<prefix>--<name>` (its styles), the prefix once."""
    return {f"{prefix}--{name}" for name in names}


# The one terminal escaping (presentation.escape), under the name the UI has always used.
clean = escape


def literal(
    value: object,
    *,
    style: Style | str = "",
    multiline: bool = False,
    max_len: int | None = None,
    empty: str = EMPTY,
) -> Text:
    """A value from the database as plain Text: never parsed as markup, escapes shown, not run."""
    if value is None or value == "":
        return Text(empty, style=style)
    return Text(clean(str(value), multiline=multiline, max_len=max_len), style=style)


def money(value: Decimal | None) -> str:
    """12.5 → '12.50'; thousands separated by a space; None → '—'."""
    if value is None:
        return EMPTY
    return f"{value:,.2f}".replace(",", " ")


def percent(value: Decimal | float | None) -> str:
    return EMPTY if value is None else f"{float(value):.1f} %"


def count(value: int | None) -> str:
    return EMPTY if value is None else f"{value:,}".replace(",", " ")


def age(then: datetime | None, now: datetime, *, step_s: int = 1) -> str:
    """Compact age: '8s', '12m', '3h', '2d'; future times count as 0s. Under a minute in steps
    of `step_s` seconds ('<10s', '20s' with 10)."""
    if then is None:
        return EMPTY
    seconds = max(0, int((now - then).total_seconds()))
    if 1 < step_s and seconds < step_s:
        return f"<{step_s}s"
    if seconds < 60:
        return f"{seconds // step_s * step_s}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86_400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def countdown(then: datetime | None, now: datetime, step_s: int = 1) -> str:
    """'in 18s' for a future time, 'due' once it has passed. Under a minute in steps of `step_s`
    seconds, rounded up so that it never says 'due' too early ('in <10s', 'in 20s', 'in 1m')."""
    if then is None:
        return EMPTY
    seconds = int((then - now).total_seconds())
    if seconds <= 0:
        return "due"
    if 1 < step_s and seconds < 60:
        if seconds < step_s:
            return f"in <{step_s}s"
        return f"in {-(-seconds // step_s) * step_s}s" if seconds < 60 - step_s else "in 1m"
    return f"in {age(now - timedelta(seconds=seconds), now, step_s=step_s)}"


def local_time(value: datetime | None, tz: tzinfo, now: datetime | None = None) -> str:
    """'12:04:31' today (in the display time zone), else '06-14 12:04:31'."""
    if value is None:
        return EMPTY
    local = value.astimezone(tz)
    if now is not None and local.date() == now.astimezone(tz).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def type_label(value: EventType | str) -> str:
    try:
        return TYPE_LABELS[EventType(value)]
    except ValueError:
        return clean(str(value), max_len=20)


def actor_label(actor: dict[str, Any]) -> Text:
    """'ops@10.0.0.7' from an action-log actor document (operator name, else OS user).

    Literal Text: an operator named `[@click=app.quit]x[/]` is shown as typed, never a link.
    """
    who = actor.get("operator") or actor.get("os_user") or "?"
    where = actor.get("ssh_client") or actor.get("host")
    return literal(f"{who}@{where}" if where else str(who), max_len=60)


def pack(segments: list[Text], width: int, separator: str = "  ") -> Text:
    """Segments on as few lines as fit `width`, never breaking a segment across lines."""
    lines: list[Text] = []
    line = Text()
    for segment in segments:
        if not segment.plain:
            continue
        if line.plain and line.cell_len + len(separator) + segment.cell_len > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(separator)
        line.append_text(segment)
    lines.append(line)
    return Text("\n").join(lines)
