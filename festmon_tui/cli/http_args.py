"""`festmon serve` and the `--http HOST:PORT` option of `run --headless` and `dashboard`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from festmon_tui.cli.lazy import LazyHandler
from festmon_tui.settings import Settings

if TYPE_CHECKING:
    from festmon_tui.api.config import ApiConfig

EXIT_USAGE = 2
SERVE_DEFAULT = "127.0.0.1:8080"


def register(sub: Any, settings_parent: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve",
        parents=[settings_parent],
        help="the HTTP API alone (a follower that can also lead the scheduler); logs to stderr",
        description="Serve the HTTP API (the original's /functions/v1/monitoring and "
        "/functions/v1/monitoring-api paths, /metrics for Prometheus) until SIGTERM. This "
        "process also competes for the scheduler lease, like the dashboard.",
    )
    add_http_option(serve, default=SERVE_DEFAULT)
    serve.set_defaults(handler=LazyHandler("festmon_tui.cli.http_commands", "run_serve"))


def add_http_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    where = f" (default {default})" if default else " (off unless given)"
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=default,
        help=f"serve the HTTP API there{where}; PORT alone binds 127.0.0.1",
    )


def prepare_http(settings: Settings, args: argparse.Namespace) -> ApiConfig | int | None:
    """The checked API configuration (socket bound), None when off, or exit code 2 (one line).

    Imports no HTTP library: the dashboard calls it before its first paint.
    """
    text = getattr(args, "http", None)
    if text is None:
        return None
    from festmon_tui.api.config import ApiConfigError, parse_address, prepare_api

    try:
        return prepare_api(settings, parse_address(text))
    except ApiConfigError as exc:
        sys.stderr.write(f"festmon: {exc}\n")
        return EXIT_USAGE
