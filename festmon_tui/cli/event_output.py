"""`festmon events` output on a terminal, and writing to stdout for every command.

The documents themselves (JSON, CSV) and the escaping are `festmon_tui.presentation`'s; this
module decides what a terminal gets (escaped) and what a file or pipe gets (exact values).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from festmon_tui.models import Event
from festmon_tui.presentation import EXIT_BROKEN_PIPE, escape, plural, render_csv, render_json

__all__ = [
    "error_line",
    "quiet_on_broken_pipe",
    "render_csv",
    "render_json",
    "render_table",
    "stdout_is_terminal",
    "write_events",
]


def stdout_is_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def render_table(events: list[Event], zone: ZoneInfo) -> str:
    """Aligned columns for a terminal (escaped on a pipe too); times in the configured zone."""
    header = ("ID", "SEVERITY", "TYPE", "STATUS", "CARD", "AMOUNT", "SEEN", "LAST SEEN", "RULE")
    rows = [
        (
            str(e.event_id),
            escape(e.severity),
            escape(e.event_type),
            escape(e.status),
            escape(e.card_id or "-", max_len=40),
            "" if e.affected_amount is None else str(e.affected_amount),
            f"{e.occurrence_count}x",
            _local(e.last_seen_at or e.detection_timestamp, zone),
            escape(e.detection_algorithm, max_len=60),
        )
        for e in events
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.append(plural(len(events), "event"))
    return "\n".join(lines)


def write_events(events: list[Event], fmt: str, zone: ZoneInfo, *, csv_safe: bool = False) -> None:
    """`festmon events --format fmt` to stdout: escaped on a terminal, exact on a file or pipe."""
    terminal = stdout_is_terminal()
    if fmt == "json":
        sys.stdout.write(render_json(events) + "\n")  # exact and terminal-safe alike
    elif fmt == "csv":
        sys.stdout.write(render_csv(events, terminal=terminal, csv_safe=csv_safe))
    else:
        sys.stdout.write(render_table(events, zone) + "\n")


def error_line(message: object) -> str:
    """`festmon: <message>` for stderr, escaped: stored text in it is shown, never obeyed."""
    return f"festmon: {escape(message)}\n"


def quiet_on_broken_pipe(command: Callable[[], int]) -> int:
    """Run `command`; if the reader of stdout left (`festmon events | head -2`), end quietly with
    EXIT_BROKEN_PIPE as Unix tools do, instead of a BrokenPipeError traceback.

    stdout is flushed here so a pipe closed after the last write is caught too, and then pointed
    at /dev/null so the interpreter's final flush does not print "Exception ignored…" either.
    """
    try:
        code = command()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
        return EXIT_BROKEN_PIPE
