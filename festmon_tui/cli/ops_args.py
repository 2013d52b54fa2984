"""The scripting subcommands' arguments; their work is in ops_commands (imported on use)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from festmon_tui.cli.http_args import add_http_option
from festmon_tui.cli.lazy import LazyHandler, add_command
from festmon_tui.models import EventStatus, EventType, Severity
from festmon_tui.presentation import EXIT_UNREACHABLE
from festmon_tui.vocabulary import SEVERITY_WORDS, STATUS_WORDS, event_type_words, parse_words


def register(sub: Any) -> None:
    def command(name: str, help_text: str, handler: str) -> argparse.ArgumentParser:
        return add_command(
            sub, name, LazyHandler("festmon_tui.cli.ops_commands", handler), help_text, help_text
        )

    cycle = command("cycle", "run one full detection cycle now and print its result", "run_cycle")
    cycle.add_argument("--json", action="store_true", help="print the cycle document (JSON)")
    health = command(
        "health",
        "print the health document; exit 0/1/2/3 = HEALTHY/WARNING/CRITICAL/UNKNOWN",
        "run_health",
    )
    health.add_argument("--json", action="store_true", help="print the health document (JSON)")
    health.set_defaults(settings_error_exit=EXIT_UNREACHABLE)
    status = command(
        "status", "configuration in force, scheduler leader, jobs, breaker", "run_status"
    )
    status.add_argument("--json", action="store_true", help="print the status document (JSON)")
    _register_events(command("events", "list or export events (newest first)", "run_events"))
    for name, help_text, note_required in (
        ("ack", "acknowledge an event (OPEN -> INVESTIGATING, you become its owner)", False),
        ("unack", "return an acknowledged event to OPEN", False),
        ("resolve", "resolve an event (a note is required)", True),
        ("false-positive", "mark an event a false positive (a note is required)", True),
    ):
        parser = command(name, help_text, "run_action")
        parser.add_argument("event_id", type=_event_id, metavar="ID", help="the event id")
        parser.add_argument("--note", required=note_required, help="why (stored in the audit log)")
        parser.set_defaults(action=name)
    run = command("run", "run the scheduler without a UI (for systemd); logs to stderr", "run_run")
    run.add_argument(
        "--headless",
        action="store_true",
        required=True,
        help="no dashboard: scheduled jobs only, one log line per job run",
    )
    add_http_option(run)


def _event_id(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"event id must be a positive integer, not {text!r}")
    return int(text)


def _words(
    table: dict[str, frozenset[Any]], every: frozenset[Any], label: str
) -> Callable[[str], list[Any]]:
    """Parse a comma-separated list of the dashboard's words (models' vocabulary), any case;
    every value (e.g. `all`) is no filter."""

    def parse(text: str) -> list[Any]:
        try:
            values = parse_words(text, table, label)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return [] if values == every else sorted(values)

    return parse


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str) -> datetime:
    if match := _RELATIVE.match(text.strip().lower()):
        return datetime.now(UTC) - timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since must be an ISO date/time (2026-07-04T18:00) or an age (15m, 2h, 1d), "
            f"not {text!r}"
        ) from None
    return value  # a naive value is read in MONITORING_TIMEZONE by the handler


def _positive(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"--limit must be between 1 and 1000000, not {text!r}")
    return int(text)


def _register_events(parser: argparse.ArgumentParser) -> None:
    types = event_type_words()
    # The filter bar's three lists: option, destination, its words, every value, the words' sense.
    lists: tuple[tuple[str, str, dict[str, frozenset[Any]], frozenset[Any], str], ...] = (
        (
            "--severity",
            "severity",
            SEVERITY_WORDS,
            frozenset(Severity),
            "as the dashboard's filter bar: high+ is ≥HIGH; any case",
        ),
        ("--type", "event_type", types, frozenset(EventType), "the dashboard's words"),
        (
            "--status",
            "status",
            STATUS_WORDS,
            frozenset(EventStatus),
            "the dashboard's words; "
            "active is open + investigating, closed is resolved + false-positive",
        ),
    )
    for option, dest, words, every, meaning in lists:
        parser.add_argument(
            option,
            dest=dest,
            type=_words(words, every, dest.replace("_", " ")),
            action="extend",
            default=[],
            help=f"{'|'.join(words)} ({meaning}; repeat or comma-list; default all)",
        )
    parser.add_argument("--card", help="exact card id")
    parser.add_argument("--since", type=_since, help="seen since: ISO time or an age like 2h")
    parser.add_argument("--search", help="text in the card id, transaction id or event id")
    parser.add_argument("--limit", type=_positive, default=1000, help="at most N (default 1000)")
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people, json or csv for scripts and spreadsheets (default table)",
    )
    parser.add_argument(
        "--csv-safe",
        action="store_true",
        help="CSV for spreadsheets: formulas (=, +, -, @) start with ' and control characters "
        "are escaped (also MONITORING_CSV_SAFE)",
    )
