"""`festmon events` output: a terminal table, JSON, or CSV that a spreadsheet opens."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from festmon_tui.models import Event

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

# C0, DEL and C1 controls (escape sequences), plus the bidi and line-separator characters a
# terminal may act on (a right-to-left override makes a card id read backwards).
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def printable(value: object) -> str:
    """Text for a terminal: control characters (escape sequences) are shown, never obeyed."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _plain(value: Any) -> Any:
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
        "affected_amount": _plain(event.affected_amount),
        "confidence_score": _plain(event.confidence_score),
        "occurrence_count": event.occurrence_count,
        "detection_timestamp": _plain(event.detection_timestamp),
        "last_seen_at": _plain(event.last_seen_at),
        "acknowledged_by": event.acknowledged_by,
        "acknowledged_at": _plain(event.acknowledged_at),
        "resolved_at": _plain(event.resolved_at),
        "resolution_notes": event.resolution_notes,
        "event_data": event.event_data,
        "context_data": event.context_data,
    }


def render_json(events: list[Event]) -> str:
    return json.dumps([event_json(e) for e in events], indent=2, default=str, ensure_ascii=False)


def render_csv(events: list[Event]) -> str:
    """RFC 4180 CSV (CRLF, quoted as needed), one header row; values exactly as stored."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, dialect="excel")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = event_json(event)
        cells = []
        for column in CSV_COLUMNS:
            value = row[column]
            if isinstance(value, dict | list):
                value = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue()


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def render_table(events: list[Event], zone: ZoneInfo) -> str:
    """Aligned columns for a terminal; times in the configured zone."""
    header = ("ID", "SEVERITY", "TYPE", "STATUS", "CARD", "AMOUNT", "SEEN", "LAST SEEN", "RULE")
    rows = [
        (
            str(e.event_id),
            str(e.severity),
            str(e.event_type),
            str(e.status),
            printable(e.card_id or "-")[:40],
            "" if e.affected_amount is None else str(e.affected_amount),
            f"{e.occurrence_count}x",
            _local(e.last_seen_at or e.detection_timestamp, zone),
            printable(e.detection_algorithm),
        )
        for e in events
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.append(f"{len(events)} event(s)")
    return "\n".join(lines)
