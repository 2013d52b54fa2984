"""`festmon demo`: the dashboard paints first; the festival behind it starts in its opener.

Only --headless (no terminal UI) imports the simulator and the database code up front.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack

from festmon_tui.cli.http_args import prepare_http
from festmon_tui.cli.ui_commands import import_in_thread, run_dashboard
from festmon_tui.service.api import MonitorService
from festmon_tui.settings import Settings

EXIT_USAGE = 2


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.headless and getattr(args, "http", None):
        sys.stderr.write(
            "festmon demo: error: --http serves the API beside the dashboard; without one use "
            "festmon serve --http (see 'festmon demo -h')\n"
        )
        return EXIT_USAGE
    if args.headless:
        from festmon_tui.cli import sim_commands

        return sim_commands.run_demo(settings, args)
    if args.json or args.check:
        sys.stderr.write(
            "festmon demo: error: --json and --check need --headless (see 'festmon demo -h')\n"
        )
        sys.stderr.flush()
        return EXIT_USAGE

    api = prepare_http(settings, args)  # checked before the first paint, no HTTP imports
    if isinstance(api, int):
        return api

    async def open_service(stack: AsyncExitStack) -> MonitorService:
        # Imported here, after the first paint, in a thread: the simulator, asyncpg and the
        # scheduler (and the HTTP stack with --http).
        http = ["festmon_tui.api.server"] if api else []
        await import_in_thread("festmon_tui.cli.sim_commands", *http)
        from festmon_tui.cli.sim_commands import open_demo_service

        return await open_demo_service(settings, args, stack, api)

    return run_dashboard(settings, open_service)
