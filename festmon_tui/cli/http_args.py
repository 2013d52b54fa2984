"""`festmon serve` and the `--http HOST:PORT` option of `run --headless` and `dashboard`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from festmon_tui.cli.lazy import LazyHandler, add_command
from festmon_tui.settings_light import SettingsError

if TYPE_CHECKING:
    from festmon_tui.api.config import ApiConfig
    from festmon_tui.settings import Settings

from festmon_tui.presentation import EXIT_USAGE

SERVE_DEFAULT = "127.0.0.1:8080"


def register(sub: Any) -> None:
    serve = add_command(
        sub,
        "serve",
        LazyHandler("festmon_tui.cli.http_commands", "run_serve"),
        "the HTTP API alone (a follower that can also lead the scheduler); logs to stderr",
        "Serve the HTTP API (the original's /functions/v1/monitoring and "
        "/functions/v1/monitoring-api paths, /metrics for Prometheus) until SIGTERM. This "
        "process also competes for the scheduler lease, like the dashboard.",
    )
    add_http_option(serve, default=SERVE_DEFAULT)


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
    try:
        return check_http(settings, args)
    except SettingsError as exc:
        sys.stderr.write(f"festmon: {exc}\n")
        return EXIT_USAGE


def check_http_address(args: argparse.Namespace) -> int | None:
    """Exit code 2 (one line) when --http is not an address; before the dashboard's first paint,
    with nothing but the command line (the API's settings are checked with the others after)."""
    text = getattr(args, "http", None)
    if text is None:
        return None
    from festmon_tui.api.address import ApiConfigError, parse_address

    try:
        parse_address(text)
    except ApiConfigError as exc:
        sys.stderr.write(f"festmon: {exc}\n")
        return EXIT_USAGE
    return None


def check_http(settings: Settings, args: argparse.Namespace) -> ApiConfig | None:
    """The checked API configuration (socket bound), None when off; SettingsError (one line)
    when a setting or the address is off. The dashboard calls it with the settings it validates
    right after its first frame, so a bad one ends it like any other bad setting."""
    text = getattr(args, "http", None)
    if text is None:
        return None
    from festmon_tui.api.address import ApiConfigError, parse_address
    from festmon_tui.api.config import prepare_api

    try:
        return prepare_api(settings, parse_address(text))
    except ApiConfigError as exc:
        raise SettingsError(str(exc)) from None
