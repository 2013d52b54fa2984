"""What each endpoint answers, over the service's reports (auth and limits are done before)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from festmon_tui.api import documents, params
from festmon_tui.api.auth import Caller
from festmon_tui.api.prometheus import CONTENT_TYPE, Exposition, Reading
from festmon_tui.db.api_reads import EventPage
from festmon_tui.models import (
    BreakerState,
    ConnectionState,
    EventStatus,
    EventType,
    HealthStatus,
    Severity,
    Verb,
)
from festmon_tui.presentation import dumps_json, event_json, plain
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.documents import cycle_document, status_document
from festmon_tui.service.reports import Reports

# POST /events/{id}/<action> and PATCH /events/{id} {"status": ...}: the schema's verbs, and
# whether the action needs a note (SPEC §6.5).
ACTIONS = {
    "acknowledge": (Verb.ACKNOWLEDGE, False),
    "unacknowledge": (Verb.UNACKNOWLEDGE, False),
    "resolve": (Verb.RESOLVE, True),
    "false-positive": (Verb.FALSE_POSITIVE, True),
    "false_positive": (Verb.FALSE_POSITIVE, True),
}
STATUS_ACTIONS = {
    EventStatus.INVESTIGATING: "acknowledge",
    EventStatus.OPEN: "unacknowledge",
    EventStatus.RESOLVED: "resolve",
    EventStatus.FALSE_POSITIVE: "false-positive",
}


# event_page's filters, each off: a listing names those its query sets.
_NO_FILTERS: dict[str, Any] = {
    "event_types": (),
    "severities": (),
    "statuses": (),
    "card_id": None,
    "start": None,
    "end": None,
}
# The list filters both event listings take: query parameter, event_page keyword, values.
_KINDS: tuple[tuple[str, str, type[StrEnum]], ...] = (
    ("event_type", "event_types", EventType),
    ("severity", "severities", Severity),
    ("status", "statuses", EventStatus),
)


def _kinds(query: QueryParams) -> dict[str, tuple[str, ...]]:
    """The event_type, severity and status filters of a query, by event_page keyword."""
    return {keyword: params.choices(query, name, enum) for name, keyword, enum in _KINDS}


def _kinds_applied(kinds: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
    """The list filters as a document echoes them: comma-separated, or None."""
    return {name: ",".join(kinds[keyword]) or None for name, keyword, _enum in _KINDS}


def utc_now() -> datetime:
    return datetime.now(UTC)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Terminal-safe like every surface (curl on an operator's terminal): the one JSON path.
    text = dumps_json(body, indent=None, default=documents.json_default, compact=True)
    return Response(text, status, headers, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > 64 * 1024:
            raise params.BadParameter("body", "larger than 64 kB")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise params.BadParameter("body", "is not valid JSON") from None
    if not isinstance(value, dict):
        raise params.BadParameter("body", 'must be a JSON object such as {"note": "..."}')
    return value


def _health_code(body: dict[str, Any]) -> int:
    """UNKNOWN (database away, schema missing, not measured yet) is a 503, like the
    original's error path; HEALTHY, WARNING and CRITICAL are answers, so 200."""
    return 503 if body["status"] == HealthStatus.UNKNOWN else 200


@dataclass(frozen=True)
class Handlers:
    """One coroutine per endpoint; expected failures raise what app._answer maps to a status."""

    reports: Reports
    exposition: Exposition
    openapi_document: Callable[[], dict[str, Any]]

    async def _event_page(self, limit: int, offset: int = 0, /, **filters: Any) -> EventPage:
        """A page of events, newest first; each filter not given is off."""
        return await self.reports.event_page(
            **{**_NO_FILTERS, **filters}, limit=limit, offset=offset
        )

    # -- health and status -------------------------------------------------------------------

    def _breaker_config(self) -> dict[str, int]:
        s = self.reports.settings
        return {
            "failure_threshold": s.monitoring_circuit_failure_threshold,
            "recovery_timeout_ms": s.monitoring_circuit_recovery_timeout_ms,
            "half_open_max_calls": s.monitoring_circuit_half_open_max_calls,
            "timeout_ms": s.monitoring_circuit_timeout_ms,
        }

    async def processor_health(self, _request: Request, _caller: Caller) -> Response:
        state = self.reports.state_with_breaker()
        body = documents.processor_health(state, utc_now(), self._breaker_config())
        return json_response(body, _health_code(body))

    async def api_health(self, _request: Request, _caller: Caller) -> Response:
        state = self.reports.state_with_breaker()
        alerts: list[dict[str, Any]] = []
        if self.reports.reachable:
            try:
                alerts = await self.reports.recent_alerts(5)
            except Unavailable:
                pass  # the health document already says what is known
        body = documents.api_health(state, utc_now(), alerts)
        return json_response(body, _health_code(body))

    async def status(self, _request: Request, _caller: Caller) -> Response:
        state = self.reports.state_with_breaker()
        now = utc_now()
        body = status_document(self.reports.settings, state, now)
        body["timestamp"] = now.isoformat()
        body["circuit_breaker"] = body["scheduler"]["circuit_breaker"]
        return json_response(body)

    # -- events ------------------------------------------------------------------------------

    async def processor_events(self, request: Request, _caller: Caller) -> Response:
        q = request.query_params
        kinds = _kinds(q)
        limit = params.integer(q, "limit", 50, 1, params.MAX_PER_PAGE)
        page = await self._event_page(limit, **kinds)
        return json_response(
            {
                "events": [event_json(e) for e in page.events],
                "total": page.total,
                "returned": len(page.events),
                "filters_applied": {**_kinds_applied(kinds), "limit": limit},
                "timestamp": utc_now().isoformat(),
            }
        )

    async def api_events(self, request: Request, _caller: Caller) -> Response:
        q = request.query_params
        kinds = _kinds(q)
        card_id = params.text(q, "card_id")
        start = params.timestamp(q, "start_date")
        end = params.timestamp(q, "end_date")
        if start is not None and end is not None and start > end:
            raise params.BadParameter("end_date", "is before start_date")
        page_number = params.page_number(q)
        per_page = params.integer(q, "per_page", 50, 1, params.MAX_PER_PAGE)
        offset = (page_number - 1) * per_page
        page = await self._event_page(
            per_page, offset, **kinds, card_id=card_id, start=start, end=end
        )
        filters = {
            **_kinds_applied(kinds),
            "card_id": card_id,
            "start_date": None if start is None else start.isoformat(),
            "end_date": None if end is None else end.isoformat(),
            "page": page_number,
            "per_page": per_page,
        }
        return json_response(documents.events_page(page, page_number, per_page, filters))

    async def event(self, request: Request, _caller: Caller) -> Response:
        event_id = params.event_id(request.path_params["event_id"])
        detail = await self.reports.event_detail(event_id)
        body = event_json(detail.event)
        body["actions"] = [
            {
                "action": a.action,
                "from_status": a.from_status,
                "to_status": a.to_status,
                "actor": a.actor,
                "note": a.note,
                "acted_at": a.acted_at.isoformat(),
            }
            for a in detail.actions
        ]
        body["alerts"] = [
            {
                "alert_id": a.alert_id,
                "level": a.alert_level,
                "message": a.alert_message,
                "timestamp": a.alert_timestamp.isoformat(),
                "escalation_level": a.escalation_level,
                "acknowledged_at": plain(a.acknowledged_at),
                "acknowledged_by": a.acknowledged_by,
            }
            for a in detail.alerts
        ]
        return json_response(body)

    async def action(self, request: Request, caller: Caller) -> Response:
        event_id = params.event_id(request.path_params["event_id"])
        name = request.path_params["action"]
        if name not in ACTIONS:
            allowed = ", ".join(k for k in ACTIONS if k != "false_positive")
            raise params.BadParameter("action", f"{name[:40]!r} is not one of {allowed}")
        return await self._act(request, caller, event_id, name, await _body(request))

    async def patch(self, request: Request, caller: Caller) -> Response:
        event_id = params.event_id(request.path_params["event_id"])
        body = await _body(request)
        raw = body.get("status")
        try:
            status = EventStatus(raw if isinstance(raw, str) else "")
        except ValueError:
            allowed = ", ".join(s.value for s in STATUS_ACTIONS)
            raise params.BadParameter("status", f"must be one of {allowed}") from None
        return await self._act(request, caller, event_id, STATUS_ACTIONS[status], body)

    async def _act(
        self, request: Request, caller: Caller, event_id: int, name: str, body: dict[str, Any]
    ) -> Response:
        verb, note_required = ACTIONS[name]
        note = params.note(body, note_required)
        address = request.client.host if request.client else None
        event = await self.reports.act(verb, event_id, note, caller.name, address)
        return json_response({"event": event_json(event), "actor": caller.name})

    # -- cycle, metrics, dashboard -----------------------------------------------------------

    async def cycle(self, _request: Request, _caller: Caller) -> Response:
        state = self.reports.state_with_breaker()
        breaker = state.breaker
        if breaker is not None and breaker.state is BreakerState.OPEN:
            wait = max(1, round(breaker.seconds_to_probe or 1))
            return json_response(
                {
                    "success": False,
                    "error": "Service Unavailable",
                    "message": f"circuit breaker is OPEN: next probe in {wait} s",
                    "timestamp": utc_now().isoformat(),
                },
                503,
                {"Retry-After": str(wait)},
            )
        try:
            result = await self.reports.run_cycle()
        except ActionRefused as exc:
            if state.connection is not ConnectionState.CONNECTED:
                raise Unavailable(str(exc)) from None
            raise
        body = cycle_document(result)
        # The original's contract: a failed cycle is a 500 with the cycle document.
        return json_response(body, 200 if result.success else 500)

    async def api_metrics(self, request: Request, _caller: Caller) -> Response:
        q = request.query_params
        now = utc_now()
        end = params.timestamp(q, "end") or now
        start = params.timestamp(q, "start") or end - timedelta(hours=24)
        if start > end:
            raise params.BadParameter("start", "is after end")
        if end - start > timedelta(days=31):
            raise params.BadParameter("start", "the range is longer than 31 days")
        figures = await self.reports.range_figures(start, end)
        snapshots, _counts = await self.reports.trends(start)
        return json_response(documents.metrics_document(figures, snapshots, start, end, now))

    async def dashboard(self, _request: Request, _caller: Caller) -> Response:
        now = utc_now()
        snapshots, counts = await self.reports.trends(now - timedelta(hours=24))
        latest = await self._event_page(50)
        figures = await self.reports.range_figures(now - timedelta(hours=24), now)
        finished = figures.runs_succeeded + figures.runs_failed
        share = None if finished == 0 else round(figures.runs_succeeded / finished * 100, 2)
        body = documents.dashboard_document(
            self.reports.state_with_breaker(),
            now,
            snapshots,
            counts,
            latest.events,
            latest.total_open,
            await self.reports.recent_failures(now - timedelta(seconds=60)),
            share,
        )
        return json_response(body)

    async def prometheus(self, _request: Request, _caller: Caller) -> Response:
        state = self.reports.state_with_breaker()
        reading = Reading(state=state)
        if self.reports.reachable:
            reading.health_status = state.health_status
            try:
                reading.active = await self.reports.active_by_kind()
                reading.lag = await self.reports.rule_lag()
            except Unavailable:
                reading.health_status = HealthStatus.UNKNOWN
        return Response(self.exposition.render(reading), media_type=CONTENT_TYPE)

    async def openapi(self, _request: Request, _caller: Caller) -> Response:
        return json_response(self.openapi_document())
