"""festmon's command line: the composition root turning argv + settings into a running command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from festmon_tui import __version__
from festmon_tui._settings_help import HELP
from festmon_tui.cli import (
    config_args,
    db_args,
    event_output,
    gc_pause,
    http_args,
    logs,
    ops_args,
    sim_args,
    ui_commands,
)
from festmon_tui.cli.pending import PendingSettings
from festmon_tui.presentation import EXIT_INTERRUPTED, EXIT_USAGE, escape
from festmon_tui.settings_light import SettingsError, field_option_name, readable

if TYPE_CHECKING:
    from festmon_tui.settings import Settings

# Every command module registers its subcommands here. These modules are light: a command's
# implementation (asyncpg, the scheduler, the simulator, even pydantic) is imported when that
# command runs, so `festmon --help` is quick and the dashboard paints before any of it is loaded.
_COMMAND_MODULES: tuple[Any, ...] = (
    db_args,
    ops_args,
    sim_args,
    ui_commands,
    http_args,
    config_args,
)

SETTINGS_GROUP = "settings (each also an environment variable or a line of a festmon.env file)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        # escaped: an argument can hold anything, and this line goes to a terminal.
        sys.stderr.write(f"{self.prog}: error: {escape(message)} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One --option per setting, after the command's own options, so every setting works on
    the command line; the help is each setting's description, unit and default."""
    group = parser.add_argument_group(SETTINGS_GROUP)
    for name, text in HELP:
        group.add_argument(
            field_option_name(name),
            dest=f"setting__{name}",
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=text.replace("%", "%%"),
        )


def _own_usage(parser: argparse.ArgumentParser) -> str:
    """The usage line of a command's own options; the settings are summed up after it."""
    settings = argparse.Action(["--SETTING"], dest="setting", metavar="VALUE")
    formatter = parser._get_formatter()
    formatter.add_usage(
        None, [*parser._actions, settings], parser._mutually_exclusive_groups, prefix="usage: "
    )
    return formatter.format_help().strip().removeprefix("usage: ")


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand's parser, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield sub
                yield from _commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="festmon",
        description="Watch a festival cashless-payment database for money going missing.",
        epilog="Every setting is an environment variable (or a line of /etc/festmon/festmon.env, "
        "~/.config/festmon/festmon.env, .env) and an option of each command, e.g. "
        "`festmon db migrate --database-url postgresql://...`; `festmon config` shows them all "
        "and where each comes from.",
    )
    parser.add_argument("--version", action="version", version=f"festmon {__version__}")
    parser.add_argument(
        "--env-file",
        default=None,
        metavar="PATH",
        help="dotenv file read after the system and user festmon.env files (default: ./.env, "
        "if present; a PATH given must exist)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _COMMAND_MODULES:
        module.register(sub)
    for command in _commands(parser):
        if command.get_default("handler") is None:
            continue
        # The top level's defaults (plain `festmon` paints first) reach every subcommand.
        command.set_defaults(paint_first=bool(command.get_default("paint_first")))
        if not command.get_default("no_settings"):
            command.usage = _own_usage(command)
            _add_settings_options(command)
    # Plain `festmon` opens the dashboard (settings from the files and the environment).
    parser.set_defaults(handler=ui_commands.run_dashboard_command, paint_first=True)
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
        # A reader that leaves (`festmon events | head -2`) ends the command quietly.
        return event_output.quiet_on_broken_pipe(lambda: handler(settings, args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _prepare(
    argv: Sequence[str] | None,
) -> int | tuple[Callable[..., int], Settings | PendingSettings, argparse.Namespace]:
    """The command's handler, the settings and the arguments; or the exit code of a bad start.

    The dashboard (`paint_first`) gets PendingSettings, validated after its first frame; every
    other command gets validated Settings, and, if it uses a database, a database to use.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(verbose=args.verbose)
    handler: Callable[..., int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    # `health` is a monitoring plugin: a configuration it cannot use is UNKNOWN (3), not the
    # usage code 2, which Nagios would read as CRITICAL.
    error_exit = int(getattr(args, "settings_error_exit", EXIT_USAGE))
    if args.env_file is not None and not readable(Path(args.env_file).expanduser()):
        sys.stderr.write(f"festmon: --env-file '{escape(args.env_file)}': no such file\n")
        return error_exit
    pending = PendingSettings(_overrides(args), args.env_file or ".env")
    paint_first = args.paint_first and not getattr(args, "headless", False)
    if getattr(args, "no_settings", False) or paint_first:
        return handler, pending, args
    try:
        settings = pending.load()
        if getattr(args, "needs_database", True):
            pending.announce(settings.database())
    except SettingsError as exc:
        sys.stderr.write(f"festmon: {escape(exc)}\n")
        return error_exit
    return handler, settings, args
