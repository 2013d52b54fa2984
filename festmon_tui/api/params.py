"""Query and body parameters checked before any SQL: a bad one is a 400 naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from starlette.datastructures import QueryParams

MAX_TEXT = 200  # card ids and filter values; anything longer is not a real one
MAX_NOTE = 4000
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100
_BIGINT_MAX = 2**63 - 1


class BadParameter(ValueError):
    """A request parameter is invalid; `name` is the parameter, the message says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"invalid parameter {name!r}: {message}")
        self.name = name


def single(query: QueryParams, name: str) -> str | None:
    values = query.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0]


def _text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise BadParameter(name, f"longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise BadParameter(name, "contains a NUL character")
    return value


def choices(query: QueryParams, name: str, enum: type[StrEnum]) -> tuple[str, ...]:
    """A comma-separated list of an enum's values (case-insensitive), () when absent."""
    raw = single(query, name)
    if raw is None or not raw.strip():
        return ()
    _text(name, raw)
    found = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        match = [m for m in enum if m.value.lower() == part.lower().replace("-", "_")]
        if not match:
            allowed = ", ".join(m.value for m in enum)
            raise BadParameter(name, f"{part[:40]!r} is not one of {allowed}")
        found.append(match[0].value)
    return tuple(sorted(set(found)))


def text(query: QueryParams, name: str) -> str | None:
    raw = single(query, name)
    return None if raw is None or raw == "" else _text(name, raw)


def timestamp(query: QueryParams, name: str) -> datetime | None:
    """ISO 8601 (2026-07-04, 2026-07-04T18:00:00Z, +02:00); a time without offset is UTC."""
    raw = single(query, name)
    if raw is None or raw == "":
        return None
    if len(raw) > 40:
        raise BadParameter(name, "is not an ISO 8601 date or date-time")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadParameter(
            name, f"{raw[:40]!r} is not an ISO 8601 date or date-time (2026-07-04T18:00:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def integer(query: QueryParams, name: str, default: int, low: int, high: int) -> int:
    """A whole number from `low` to `high`; above `high` it is capped (per_page <= 100)."""
    raw = single(query, name)
    if raw is None or raw == "":
        return default
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadParameter(name, f"{raw[:40]!r} is not a whole number from {low}")
    number = int(value)
    if number < low:
        raise BadParameter(name, f"must be at least {low}")
    return min(number, high)


def page_number(query: QueryParams) -> int:
    raw = single(query, "page")
    number = integer(query, "page", 1, 1, MAX_PAGE + 1)
    if number > MAX_PAGE:
        raise BadParameter("page", f"must be at most {MAX_PAGE}, not {raw!s:.40}")
    return number


def event_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not 0 < int(raw) <= _BIGINT_MAX:
        raise BadParameter("event_id", f"{raw[:40]!r} is not a positive whole number")
    return int(raw)


def note(body: dict[str, Any], required: bool) -> str | None:
    value = body.get("note")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadParameter("note", "a note is required for this action")
        return None
    if not isinstance(value, str):
        raise BadParameter("note", "must be a string")
    if len(value) > MAX_NOTE:
        raise BadParameter("note", f"longer than {MAX_NOTE} characters")
    if "\x00" in value:
        raise BadParameter("note", "contains a NUL character")
    return value.strip()
