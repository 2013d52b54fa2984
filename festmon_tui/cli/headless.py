"""`festmon run --headless`: the scheduler alone, a log line per job run, clean stop on signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from festmon_tui.db.target import open_target
from festmon_tui.models import ConnectionState, DetectionAlarm, DetectionAlarmKind
from festmon_tui.scheduler.runner import JobRun
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings

if TYPE_CHECKING:
    from festmon_tui.api.config import ApiConfig

log = logging.getLogger("festmon_tui.headless")

# SIGHUP is what a lost terminal or SSH session sends; SIGTERM is systemd's stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _OneLine(logging.Filter):
    """asyncpg logs every failed reconnect of a pool with a traceback; during an outage that
    floods the journal with what looks like a crash. Keep the line, with the error's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def describe_run(run: JobRun) -> str:
    outcome = "skipped" if run.skipped else ("ok" if run.success else "FAILED")
    term = "" if run.term is None else f" term {run.term}"
    return f"job {run.name} {outcome} in {run.duration_ms} ms{term}: {run.result}"


def _both(*hooks: Callable[[JobRun], None]) -> Callable[[JobRun], None]:
    def call(run: JobRun) -> None:
        for hook in hooks:
            hook(run)

    return call


def _log_run(run: JobRun) -> None:
    level = logging.INFO if run.success else logging.WARNING
    log.log(level, "%s", describe_run(run))


async def _log_connection(service: PostgresMonitorService) -> None:
    """One line each time the database goes away or comes back (the journal shows outages).

    While it is away the error's text changes with every retry ("connection reset", "connection
    lost", ...): that is not news, so an outage is one line; a reachable database that refuses
    (the schema is missing) is logged again when its reason changes.
    """
    last: tuple[ConnectionState, str | None] | None = None
    async for _change in service.changes():
        state = service.state
        reason = state.last_error if state.connection is ConnectionState.CONNECTED else None
        now = (state.connection, reason)
        if now != last and state.connection is not ConnectionState.CONNECTING:
            # (connected but not detecting, e.g. no schema: _log_detection says why)
            if state.connection is ConnectionState.CONNECTED and (
                not state.last_error or state.detection_alarms
            ):
                log.info("database connected")
            else:
                log.warning("database unavailable: %s", state.last_error)
            last = now


def _alarm_key(alarm: DetectionAlarm) -> tuple[str, object, str]:
    # "no scheduler has run for 3 min" grows every minute: the same alarm, not a new line
    same = alarm.kind is DetectionAlarmKind.NOT_SCHEDULED
    return (str(alarm.kind), alarm.since, "" if same else alarm.message)


async def _log_detection(service: PostgresMonitorService) -> None:
    """One line when detection stops, naming why and the fix (issue 13.3), one when it resumes."""
    last: tuple[tuple[str, object, str], ...] = ()
    async for _change in service.changes():
        state = service.state
        if state.connection is not ConnectionState.CONNECTED:
            continue
        now = tuple(_alarm_key(a) for a in state.detection_alarms)
        if now != last:
            for alarm in state.detection_alarms:
                if _alarm_key(alarm) not in last:
                    log.error("NOT DETECTING: %s", alarm.message)
            if last and not now:
                log.info("detecting again")
            last = now


async def run_headless(settings: Settings, api: ApiConfig | None = None) -> int:
    """Run the scheduler until SIGTERM / SIGHUP / SIGINT, then release everything and return 0.

    With `api` (checked, socket bound) the HTTP API is served from this loop too.
    """
    logging.getLogger("festmon_tui").setLevel(logging.INFO)
    logging.getLogger("asyncpg.pool").addFilter(_OneLine())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with open_target(settings) as target:
            server = None
            on_run: Callable[[JobRun], None] = _log_run
            if api is not None:
                from festmon_tui.api.server import ApiServer

                server = ApiServer(api)
                on_run = _both(_log_run, server.exposition.observe)
            service = PostgresMonitorService(
                settings,
                target.options,
                listen=False,
                on_job_run=on_run,
                database_label=target.label,
            )
            await service.start()
            log.info("scheduler started as %s on %s", service.holder.label, target.label)
            if server is not None:
                await server.start(service)
            watcher = asyncio.create_task(_log_connection(service))
            detection = asyncio.create_task(_log_detection(service))
            await stop.wait()
            watcher.cancel()
            detection.cancel()
            log.info("stopping on %s: releasing the lease", received[0] if received else "request")
            if server is not None:
                await server.stop()
            await service.stop()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0
