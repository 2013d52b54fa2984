"""`festmon run --headless`: the scheduler alone, a log line per job run, clean stop on signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from festmon_tui.db.target import open_target
from festmon_tui.models import ConnectionState
from festmon_tui.presentation import EXIT_OK, escape
from festmon_tui.scheduler.runner import JobRun
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings

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
    """One log line; the result is escaped (a rule's error can quote stored text)."""
    outcome = "skipped" if run.skipped else ("ok" if run.success else "FAILED")
    term = "" if run.term is None else f" term {run.term}"
    return f"job {run.name} {outcome} in {run.duration_ms} ms{term}: {escape(run.result)}"


def unavailable_line(error: str | None) -> str:
    """'database unavailable: <why>', without doubling the prefix the error often carries."""
    reason = (error or "no answer").removeprefix("database unavailable: ")
    return f"database unavailable: {escape(reason)}"


def _log_run(run: JobRun) -> None:
    level = logging.INFO if run.success else logging.WARNING
    log.log(level, "%s", describe_run(run))


async def _log_connection(service: PostgresMonitorService) -> None:
    """One line each time the database goes away or comes back (the journal shows outages)."""
    last: tuple[ConnectionState, str | None] | None = None
    async for _change in service.changes():
        state = service.state
        now = (state.connection, state.last_error)
        if now != last and state.connection is not ConnectionState.CONNECTING:
            if state.connection is ConnectionState.CONNECTED and not state.last_error:
                log.info("database connected")
            else:
                log.warning("%s", unavailable_line(state.last_error))
            last = now


async def run_headless(settings: Settings) -> int:
    """Run the scheduler until SIGTERM / SIGHUP / SIGINT, then release everything and return 0."""
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
            service = PostgresMonitorService(
                settings,
                target.options,
                listen=False,
                on_job_run=_log_run,
                database_label=target.label,
            )
            await service.start()
            log.info("scheduler started as %s on %s", service.holder.label, target.label)
            watcher = asyncio.create_task(_log_connection(service))
            await stop.wait()
            watcher.cancel()
            log.info("stopping on %s: releasing the lease", received[0] if received else "request")
            await service.stop()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return EXIT_OK
