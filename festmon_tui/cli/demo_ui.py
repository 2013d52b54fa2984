"""`festmon demo`: the dashboard paints first; the festival behind it starts in its opener.

Only --headless (no terminal UI) imports the simulator and the database code up front.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from festmon_tui.cli.http_args import check_http, check_http_address
from festmon_tui.cli.pending import PendingSettings
from festmon_tui.cli.ui_commands import import_in_thread, run_dashboard
from festmon_tui.presentation import EXIT_USAGE
from festmon_tui.service.api import MonitorService

if TYPE_CHECKING:
    from festmon_tui.settings import Settings


def run_demo(settings: Settings | PendingSettings, args: argparse.Namespace) -> int:
    """`festmon demo`: the dashboard gets PendingSettings, --headless validated Settings."""
    if args.headless and getattr(args, "http", None):
        sys.stderr.write(
            "festmon demo: error: --http serves the API beside the dashboard; without one use "
            "festmon serve --http (see 'festmon demo -h')\n"
        )
        return EXIT_USAGE
    if args.headless:
        from festmon_tui.cli import sim_commands

        assert not isinstance(settings, PendingSettings), "validated before --headless runs"
        return sim_commands.run_demo(settings, args)
    if args.json or args.check:
        sys.stderr.write(
            "festmon demo: error: --json and --check need --headless (see 'festmon demo -h')\n"
        )
        sys.stderr.flush()
        return EXIT_USAGE

    if (bad_address := check_http_address(args)) is not None:
        return bad_address

    async def open_service(stack: AsyncExitStack, settings: Settings) -> MonitorService:
        api = check_http(settings, args)  # a bad API setting ends the app like any other
        # Imported here, after the first paint, in a thread: the simulator, asyncpg and the
        # scheduler (and the HTTP stack with --http).
        http = ["festmon_tui.api.server"] if api else []
        await import_in_thread("festmon_tui.cli.sim_commands", *http)
        from festmon_tui.cli.sim_commands import open_demo_service

        return await open_demo_service(settings, args, stack, api)

    assert isinstance(settings, PendingSettings), "the dashboard validates after painting"
    return run_dashboard(settings, open_service)
