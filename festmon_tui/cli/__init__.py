"""festmon's command line: the composition root turning argv + settings into a running command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from festmon_tui import __version__
from festmon_tui.cli import db_args, gc_pause, http_args, ops_args, sim_args, ui_commands
from festmon_tui.settings import Settings, SettingsError, field_option_name, load_settings

# Every command module registers its subcommands here. These modules are light: a command's
# implementation (asyncpg, the scheduler, the simulator) is imported when that command runs, so
# `festmon --help` is quick and the dashboard paints before any of it is loaded.
_COMMAND_MODULES: tuple[Any, ...] = (db_args, ops_args, sim_args, ui_commands, http_args)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _settings_options() -> argparse.ArgumentParser:
    """A parent parser with one --option per setting, so every setting works on the command line."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (each also an environment variable)")
    for name, info in Settings.model_fields.items():
        group.add_argument(
            field_option_name(name),
            dest=f"setting__{name}",
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=info.description or f"overrides {name.upper()}",
        )
    return parent


def build_parser() -> argparse.ArgumentParser:
    settings_parent = _settings_options()
    parser = _Parser(
        prog="festmon",
        description="Watch a festival cashless-payment database for money going missing.",
        epilog="Every setting is an environment variable (or .env line) and an option of each "
        "command, e.g. `festmon db migrate --database-url postgresql://...`.",
    )
    parser.add_argument("--version", action="version", version=f"festmon {__version__}")
    parser.add_argument("--env-file", default=".env", help="dotenv file to read (default: .env)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _COMMAND_MODULES:
        module.register(sub, settings_parent)
    # Plain `festmon` opens the dashboard (settings from the environment / .env).
    parser.set_defaults(handler=ui_commands.run_dashboard_command)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    return {
        key.removeprefix("setting__"): value
        for key, value in vars(args).items()
        if key.startswith("setting__")
    }


def _exit_on_signal(signum: int, _frame: object) -> None:
    # SystemExit unwinds normally, so the embedded server and the lease are released.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    with gc_pause.paused():  # the dashboard pauses it again until its first frame
        prepared = _prepare(argv)
    if isinstance(prepared, int):
        return prepared
    handler, settings, args = prepared
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130


def _prepare(
    argv: Sequence[str] | None,
) -> int | tuple[Callable[..., int], Settings, argparse.Namespace]:
    """The command's handler, the settings and the arguments; or the exit code of a bad start."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[..., int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = load_settings(_overrides(args), env_file=args.env_file)
    except SettingsError as exc:
        sys.stderr.write(f"festmon: {exc}\n")
        # `health` is a monitoring plugin: a configuration it cannot use is UNKNOWN (3), not the
        # usage code 2, which Nagios would read as CRITICAL.
        return int(getattr(args, "settings_error_exit", EXIT_USAGE))
    return handler, settings, args
