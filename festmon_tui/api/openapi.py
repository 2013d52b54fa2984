"""The OpenAPI 3.1 document served at /openapi.json, built from the route table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from festmon_tui import __version__

if TYPE_CHECKING:
    from festmon_tui.api.app import Endpoint


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_ENUM_LIST = {"type": "string", "description": "one value or a comma-separated list"}
_DATE = {"type": "string", "format": "date-time"}
_FILTERS = [
    _query(
        "event_type",
        "transaction_failure, balance_discrepancy, duplicate_nfc, race_condition, ...",
        _ENUM_LIST,
    ),
    _query("severity", "CRITICAL, HIGH, MEDIUM, LOW, INFO", _ENUM_LIST),
    _query("status", "OPEN, INVESTIGATING, RESOLVED, FALSE_POSITIVE", _ENUM_LIST),
]
_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "events": [
        *_FILTERS,
        _query("card_id", "exact card id", {"type": "string", "maxLength": 200}),
        _query("start_date", "detected on or after (ISO 8601; no offset = UTC)", _DATE),
        _query("end_date", "detected on or before (ISO 8601; no offset = UTC)", _DATE),
        _query(
            "page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 1000000}
        ),
        _query(
            "per_page",
            "events per page (capped at 100)",
            {"type": "integer", "minimum": 1, "default": 50},
        ),
    ],
    "metrics": [
        _query("start", "range start (default: end - 24 h)", _DATE),
        _query("end", "range end (default: now); at most 31 days", _DATE),
    ],
}
_PROCESSOR_EVENTS = [
    *_FILTERS,
    _query(
        "limit",
        "at most this many (capped at 100)",
        {"type": "integer", "minimum": 1, "default": 50},
    ),
]
_EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_ACTION = {
    "name": "action",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "enum": ["acknowledge", "unacknowledge", "resolve", "false-positive"],
    },
}
_NOTE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "note": {
                        "type": "string",
                        "maxLength": 4000,
                        "description": "required to resolve or mark a false positive",
                    },
                    "status": {
                        "type": "string",
                        "enum": ["OPEN", "INVESTIGATING", "RESOLVED", "FALSE_POSITIVE"],
                        "description": "PATCH only",
                    },
                },
            }
        }
    },
}
_SUMMARY = {
    "cycle": "Run one full detection cycle now (operator token; at most one at a time)",
    "health": "Health: HEALTHY/WARNING/CRITICAL (200) or UNKNOWN (503, database away)",
    "events": "Events, newest first, with real totals",
    "status": "Configuration in force, scheduler leader, jobs, circuit breaker",
    "metrics": "Figures over a time range (the original's JSON metrics)",
    "dashboard": "KPIs, real-time counts and the 24 h charts of the dashboard's trends pane",
    "prometheus": "Prometheus text exposition",
    "openapi": "This document",
    "event": "One event with its action log and alerts",
    "lifecycle": "Acknowledge, unacknowledge, resolve or mark a false positive (operator; "
    "audited with the token's name)",
}
_ERRORS = {
    "400": "a parameter is invalid (the body names it)",
    "401": "no bearer token, or a wrong one",
    "403": "the token may only read",
    "404": "no such endpoint or event",
    "409": "the action is not allowed now (the body says why)",
    "429": "over the per-minute limit (Retry-After)",
    "503": "the database is away (Retry-After)",
}


def _operation_id(method: str, path: str) -> str:
    words = path.strip("/").replace("{", "").replace("}", "").replace("-", "_").split("/")
    return "_".join([method.lower(), *words])


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        for method in endpoint.methods:
            operation: dict[str, Any] = {
                "summary": _SUMMARY.get(endpoint.name, endpoint.name),
                "operationId": _operation_id(method, endpoint.path),
                "responses": {"200": {"description": "OK"}}
                | {code: {"description": text} for code, text in _ERRORS.items()},
            }
            if endpoint.role is None:
                operation["security"] = []
            parameters: list[dict[str, Any]] = []
            if endpoint.path.endswith("/monitoring/events"):
                parameters = _PROCESSOR_EVENTS
            elif endpoint.name in _PARAMETERS and "{" not in endpoint.path:
                parameters = _PARAMETERS[endpoint.name]
            if "{event_id}" in endpoint.path:
                parameters = [_EVENT_ID] + ([_ACTION] if "{action}" in endpoint.path else [])
            if parameters:
                operation["parameters"] = parameters
            if endpoint.name == "lifecycle":
                operation["requestBody"] = _NOTE_BODY
            paths.setdefault(endpoint.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "festmon monitoring API",
            "version": __version__,
            "description": "The original Phase 4 edge-function paths, served by festmon.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
