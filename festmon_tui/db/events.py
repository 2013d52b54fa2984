"""monitoring_events: filtered lists, one event's detail, and the audited lifecycle actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

from festmon_tui.db.errors import DatabaseRefused, SchemaMissing, translated
from festmon_tui.models import (
    Actor,
    Alert,
    CardView,
    Event,
    EventAction,
    EventDetail,
    EventFilter,
    EventStatus,
    EventType,
    LedgerRow,
    ScanRow,
    Severity,
)

# Column names are the model's field names (aliased where they differ), so that a record
# maps to its model by name: Model(**record), converting only what asyncpg cannot.
EVENT_COLUMNS = """
    event_id, event_type, severity, detection_algorithm, status, detection_timestamp,
    card_id, transaction_id, affected_amount, confidence_score, event_data, context_data,
    occurrence_count, last_seen_at, acknowledged_by, acknowledged_at, resolved_at,
    resolution_notes, updated_at
"""

# NULL array / text means "no filter".
_LIST_COLUMNS = (
    "SELECT"
    + EVENT_COLUMNS
    + """FROM monitoring_events
WHERE ($1::text[] IS NULL OR severity = ANY($1::text[]))
  AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
  AND ($4::text IS NULL OR card_id = $4::text)
  AND ($5::timestamptz IS NULL OR last_seen_at >= $5::timestamptz)
"""
)
_LIST_ORDER = """
ORDER BY last_seen_at DESC, event_id DESC
LIMIT $6
"""
LIST_SQL = _LIST_COLUMNS + _LIST_ORDER

# The free-text search matches card id (any case), transaction id, resolution note, owner, or
# any note or actor (operator, OS user) in the event's action history as a substring, or the
# event id exactly. $7 is a LIKE pattern with the operator's input escaped (% and _ are never
# wildcards), $8 the input as an event id (NULL unless it is one). A statement of its own, so
# that no "$7 IS NULL OR" hides the trigram indexes of V0010 and V0016 (pg_trgm, where
# installed) from the planner: every arm below has one, and the planner ORs them (a search
# over 100 000 events takes ~5 ms instead of ~100 ms).
_SEARCH_MATCH = """  AND event_id IN (
        SELECT event_id FROM monitoring_events
        WHERE lower(card_id) LIKE lower($7::text)
           OR transaction_id::text LIKE lower($7::text)
           OR event_id = $8::bigint
           OR lower(resolution_notes) LIKE lower($7::text)
           OR lower(acknowledged_by) LIKE lower($7::text)
        UNION ALL
        SELECT event_id FROM monitoring_event_actions
        WHERE lower(note) LIKE lower($7::text)
           OR lower(actor_operator) LIKE lower($7::text)
           OR lower(actor_os_user) LIKE lower($7::text))"""
SEARCH_SQL = _LIST_COLUMNS + _SEARCH_MATCH + _LIST_ORDER

_BIGINT_MAX = 2**63 - 1


def like_pattern(search: str) -> str:
    """A LIKE pattern matching `search` anywhere, taken literally (the SQL lower-cases it)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_event_id(search: str) -> int | None:
    """The search as an event id: its digits exactly as the id prints ('007' is not 7)."""
    if search.isascii() and search.isdigit() and str(int(search)) == search:
        value = int(search)
        return value if value <= _BIGINT_MAX else None
    return None


GET_SQL = "SELECT" + EVENT_COLUMNS + "FROM monitoring_events WHERE event_id = $1"

ACTIONS_SQL = """
SELECT action_id, event_id, action, from_status, to_status, actor, note, acted_at
FROM monitoring_event_actions
WHERE event_id = $1
ORDER BY acted_at, action_id
"""

ALERTS_SQL = """
SELECT alert_id, monitoring_event_id AS event_id, alert_level, alert_message, alert_timestamp,
       coalesce(escalation_level, 0) AS escalation_level, acknowledged_at, acknowledged_by
FROM alert_history
WHERE monitoring_event_id = $1
ORDER BY alert_timestamp, alert_id
"""

# The card's ledger up to an hour after the event was last seen, newest 200 rows.
LEDGER_SQL = """
SELECT log_id, transaction_id, "timestamp", transaction_type, status, amount_involved,
       previous_balance, new_balance, client_request_id
FROM app_transaction_log
WHERE card_id = $1 AND "timestamp" <= $2::timestamptz + interval '1 hour'
ORDER BY "timestamp" DESC, log_id DESC
LIMIT 200
"""

SCANS_SQL = """
SELECT scan_log_id, scan_timestamp, scan_status, processing_duration_ms, device_identifier
FROM nfc_scan_log
WHERE card_id_scanned = $1 AND scan_timestamp <= $2::timestamptz + interval '1 hour'
ORDER BY scan_timestamp DESC, scan_log_id DESC
LIMIT 100
"""

BALANCE_SQL = "SELECT amount FROM table_cards WHERE id = $1"

# Lifecycle functions of the monitoring schema: (event_id, actor jsonb, note). They check the
# transition and the note, write the action log, and raise with a clear message otherwise.
ACTION_SQL = {
    "acknowledge": "SELECT acknowledge_monitoring_event($1, $2::jsonb, $3)",
    "unacknowledge": "SELECT unacknowledge_monitoring_event($1, $2::jsonb, $3)",
    "resolve": "SELECT resolve_monitoring_event($1, $2::jsonb, $3)",
    "false_positive": "SELECT mark_monitoring_event_false_positive($1, $2::jsonb, $3)",
    "note": "SELECT add_monitoring_event_note($1, $2::jsonb, $3)",
}


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # jsonb nests deeper than Python's parser goes
            return {"_unparsed": value}
    return value if isinstance(value, dict) else {"value": value}


def event_from_record(row: asyncpg.Record) -> Event:
    """An Event from a row of EVENT_COLUMNS."""
    return Event(
        **{
            **row,
            "event_type": EventType(row["event_type"]),
            "severity": Severity(row["severity"]),
            "status": EventStatus(row["status"]),
            "event_data": _json(row["event_data"]),
            "context_data": _json(row["context_data"]),
        }
    )


def _values(items: frozenset[Any]) -> list[str] | None:
    return sorted(str(i) for i in items) if items else None


class EventNotFound(DatabaseRefused):
    """No event has this id."""


class EventRepository:
    """Reads events and applies lifecycle actions through the schema's functions."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def list(self, event_filter: EventFilter) -> list[Event]:
        f = event_filter
        search = (f.search or "").strip() or None
        args = (
            _values(f.severities),
            _values(f.event_types),
            _values(f.statuses),
            f.card_id,
            f.since,
            max(1, f.limit),
        )
        with translated():
            if search is None:
                rows = await self.pool.fetch(LIST_SQL, *args)
            else:
                rows = await self.pool.fetch(
                    SEARCH_SQL, *args, like_pattern(search), search_event_id(search)
                )
        return [event_from_record(r) for r in rows]

    async def get(self, event_id: int) -> Event:
        with translated():
            row = await self.pool.fetchrow(GET_SQL, event_id)
        if row is None:
            raise EventNotFound(f"no event with id {event_id}")
        return event_from_record(row)

    async def detail(self, event_id: int) -> EventDetail:
        event = await self.get(event_id)
        with translated():
            actions = await self.pool.fetch(ACTIONS_SQL, event_id)
            alerts = await self.pool.fetch(ALERTS_SQL, event_id)
        ledger: tuple[LedgerRow, ...] = ()
        scans: tuple[ScanRow, ...] = ()
        balance = None
        if event.card_id is not None:
            at = event.last_seen_at or event.detection_timestamp
            try:
                ledger, scans, balance = await self._card_context(event.card_id, at)
            except SchemaMissing:  # payment tables absent (a monitoring-only database)
                pass
        return EventDetail(
            event=event,
            actions=tuple(_action(r) for r in actions),
            ledger=ledger,
            scans=scans,
            alerts=tuple(_alert(r) for r in alerts),
            current_balance=balance,
        )

    async def _card_context(
        self, card_id: str, at: datetime
    ) -> tuple[tuple[LedgerRow, ...], tuple[ScanRow, ...], Any]:
        with translated():
            ledger_rows = await self.pool.fetch(LEDGER_SQL, card_id, at)
            scan_rows = await self.pool.fetch(SCANS_SQL, card_id, at)
            balance = await self.pool.fetchval(BALANCE_SQL, card_id)
        return chain_checked(reversed(ledger_rows)), tuple(_scan(r) for r in scan_rows), balance

    async def card(self, card_id: str, events_limit: int) -> CardView:
        """Every event of one card (newest first, at most events_limit + 1), ledger and scans."""
        events = await self.list(EventFilter(card_id=card_id, limit=events_limit + 1))
        ledger: tuple[LedgerRow, ...] = ()
        scans: tuple[ScanRow, ...] = ()
        balance = None
        try:
            ledger, scans, balance = await self._card_context(card_id, datetime.now(UTC))
        except SchemaMissing:  # payment tables absent (a monitoring-only database)
            pass
        return CardView(
            card_id,
            tuple(events[:events_limit]),
            ledger,
            scans,
            balance,
            more_events=len(events) > events_limit,
        )

    async def apply(self, action: str, event_id: int, actor: Actor, note: str | None) -> Event:
        """Run one lifecycle action; DatabaseRefused carries the database's own message."""
        try:
            with translated():
                await self.pool.fetchval(
                    ACTION_SQL[action], event_id, json.dumps(actor.as_json()), note
                )
        except SchemaMissing:
            if action != "note":
                raise
            raise DatabaseRefused(
                "this database cannot store a note without a status change yet "
                "(add_monitoring_event_note is missing)"
            ) from None
        return await self.get(event_id)


def chain_checked(rows: Any) -> tuple[LedgerRow, ...]:
    """Ledger rows oldest first, each completed row marked by whether its balance chain holds."""
    result: list[LedgerRow] = []
    previous_new = None
    for r in rows:
        chain_ok = None
        carries = r["previous_balance"] is not None and r["new_balance"] is not None
        if r["status"] == "completed" and carries:
            if previous_new is not None:
                chain_ok = r["previous_balance"] == previous_new
            previous_new = r["new_balance"]
        result.append(LedgerRow(**r, chain_ok=chain_ok))
    return tuple(result)


def _action(r: asyncpg.Record) -> EventAction:
    return EventAction(**{**r, "actor": _json(r["actor"])})


def _alert(r: asyncpg.Record) -> Alert:
    return Alert(**r)


def _scan(r: asyncpg.Record) -> ScanRow:
    return ScanRow(**r)
