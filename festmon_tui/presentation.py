"""How stored values leave festmon: the one terminal escaping, the JSON/CSV documents, exit codes.

Card ids, device ids, notes, operator names and `details` come from payment devices, clients and
other operators: they are data, never terminal control. Everything shown on a terminal (CLI
output in every format, error messages, the dashboard) goes through `escape()`; files and pipes
keep exact values (`render_json` is exact AND terminal-safe; `render_csv` is exact unless asked
for a terminal or for `csv_safe`). No I/O here and no terminal library: the CLI, the UI and the
HTTP API import it alike.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from festmon_tui.models import Event

# Exit codes of every command (SPEC §6: 0 ok, 1 failed, 2 usage, 3 unreachable / UNKNOWN).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_HANGUP = 129  # 128 + SIGHUP: the terminal went away
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout left (`festmon events | head`)
# `festmon health` is a monitoring plugin (Nagios): its exit code is the health status.
HEALTH_EXIT_CODES = {"HEALTHY": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

ELLIPSIS = "…"
# Printable ASCII without a backslash: shown as it is (checked at C speed, before any loop).
_PLAIN = re.compile(r"[\x20-\x5b\x5d-\x7e]*")
_ZWJ = "\u200d"
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _dangerous(char: str) -> bool:
    """A character a terminal acts on or that hides/reorders text: controls (C0, DEL, C1), format
    characters (bidi marks/overrides/isolates, zero-width space/joiners, BOM, soft hyphen, tags)
    and the line/paragraph separators."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return True
    if code < 0xAD:
        return False  # printable ASCII and Latin-1: the common case, decided without a lookup
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _code(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _emoji_joiner(value: str, index: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👨‍👩‍👧): part of one picture, kept."""
    if index == 0 or index + 1 >= len(value):
        return False
    before, after = value[index - 1], value[index + 1]
    return (unicodedata.category(before) == "So" or before == "\ufe0f" or
            0x1F3FB <= ord(before) <= 0x1F3FF) and unicodedata.category(after) == "So"  # fmt: skip


def escape(value: object, *, multiline: bool = False, max_len: int | None = None) -> str:
    """`value` as text that is safe on a terminal: every dangerous character made visible.

    Controls, bidi and zero-width characters are shown as `\\x1b`, `\\u202e`, `\\n`…; a
    backslash is doubled so the stored text `\\x1b` never looks like ESC. `multiline` keeps
    newlines. `max_len` bounds what is shown (escapes included), ending with … when cut; an
    escape is never cut in half. Markup (`[bold]`) is left as typed: it means nothing to a
    terminal, and the UI passes the result to Textual as `Text`, never as markup.
    """
    text = "" if value is None else str(value)
    if _PLAIN.fullmatch(text):  # the common case (a card id, a rule name): nothing to escape
        if max_len is None or len(text) <= max_len:
            return text
        return text[: max_len - 1] + ELLIPSIS
    if max_len is not None:
        text = text[: max_len * 2 + 2]  # never escape megabytes to show a few characters
    pieces: list[str] = []
    for index, char in enumerate(text):
        if char == "\n" and multiline:
            pieces.append(char)
        elif char in _NAMED:
            pieces.append(_NAMED[char])
        elif _dangerous(char) and not (char == _ZWJ and _emoji_joiner(text, index)):
            pieces.append(_code(char))
        else:
            pieces.append(char)
    if max_len is None or sum(len(p) for p in pieces) <= max_len:
        return "".join(pieces)
    shown: list[str] = []
    used = 0
    for piece in pieces:  # whole pieces only: an escape is never cut in half
        if used + len(piece) > max_len - 1:
            break
        shown.append(piece)
        used += len(piece)
    return "".join(shown) + ELLIPSIS


# ---------------------------------------------------------------------------------------------
# JSON: exact values, and safe on a terminal: every dangerous character is written as a JSON
# \uXXXX escape, which any JSON reader turns back into the stored character.

_NON_ASCII = re.compile("[\x7f-\U0010ffff]")


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if not _dangerous(char):
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def dumps_json(
    document: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] = str,
    compact: bool = False,
) -> str:
    """A JSON document that round-trips exactly and holds no character a terminal acts on."""
    separators = (",", ":") if compact else None
    text = json.dumps(
        document, indent=indent, default=default, ensure_ascii=False, separators=separators
    )
    # Outside strings JSON has only ASCII, so every match is inside a string: escaping it there
    # keeps the document valid and its values exact.
    return _NON_ASCII.sub(_json_escape, text)


def plain(value: Any) -> Any:
    """A value JSON holds exactly: money and rates as decimal strings, times in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def event_json(event: Event) -> dict[str, Any]:
    """One event as a JSON object; money stays exact (a decimal string)."""
    return {
        "event_id": event.event_id,
        "event_type": str(event.event_type),
        "severity": str(event.severity),
        "status": str(event.status),
        "detection_algorithm": event.detection_algorithm,
        "card_id": event.card_id,
        "transaction_id": None if event.transaction_id is None else str(event.transaction_id),
        "affected_amount": plain(event.affected_amount),
        "confidence_score": plain(event.confidence_score),
        "occurrence_count": event.occurrence_count,
        "detection_timestamp": plain(event.detection_timestamp),
        "last_seen_at": plain(event.last_seen_at),
        "acknowledged_by": event.acknowledged_by,
        "acknowledged_at": plain(event.acknowledged_at),
        "resolved_at": plain(event.resolved_at),
        "resolution_notes": event.resolution_notes,
        "event_data": event.event_data,
        "context_data": event.context_data,
    }


def render_json(events: list[Event]) -> str:
    """The events as a JSON array: exact values, terminal-safe (see dumps_json)."""
    return dumps_json([event_json(e) for e in events])


# ---------------------------------------------------------------------------------------------
# CSV: RFC 4180 for spreadsheets and scripts.

CSV_COLUMNS = (
    "event_id",
    "severity",
    "event_type",
    "status",
    "detection_algorithm",
    "card_id",
    "transaction_id",
    "affected_amount",
    "confidence_score",
    "occurrence_count",
    "detection_timestamp",
    "last_seen_at",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_at",
    "resolution_notes",
    "event_data",
    "context_data",
)

# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): one starting with = + - @,
# a tab or a carriage return. A plain number (-12.50) stays a number.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$")


def neutralise_formula(cell: str) -> str:
    """`=HYPERLINK(...)` → `'=HYPERLINK(...)`: shown as text by Excel, LibreOffice, Sheets."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


def render_csv(events: list[Event], *, terminal: bool = False, csv_safe: bool = False) -> str:
    """RFC 4180 CSV (CRLF, quoted as needed), one header row.

    By default every value is exactly as stored (a file or a pipe round-trips). `terminal`:
    every cell escaped for a terminal. `csv_safe` (opt-in, for spreadsheets and for files that
    someone may `cat`): formulas neutralised and dangerous characters escaped.
    """
    buffer = io.StringIO()
    # On a terminal a record ends with a plain newline: a CR there is a control character.
    writer = csv.writer(buffer, dialect="excel", lineterminator="\n" if terminal else "\r\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = event_json(event)
        cells = []
        for column in CSV_COLUMNS:
            value = row[column]
            if isinstance(value, dict | list):
                value = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
            cell = "" if value is None else str(value)
            if csv_safe:
                cell = neutralise_formula(cell)
            if terminal or csv_safe:
                cell = escape(cell)
            cells.append(cell)
        writer.writerow(cells)
    return buffer.getvalue()


def render_csv_safe(events: list[Event]) -> str:
    return render_csv(events, csv_safe=True)


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """'1 event', '2 events', '0 events'."""
    return f"{n} {noun if n == 1 else (plural_form or noun + 's')}"
